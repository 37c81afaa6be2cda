package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// mustCode runs nook and checks the exit code.
func (e *Env) mustCode(code int, args ...string) Result {
	e.t.Helper()
	r := e.Run(args...)
	if r.Code != code {
		e.t.Fatalf("nook %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, code, r.Stdout, r.Stderr)
	}
	return r
}

// assertNoContainers checks that nothing is left: no records, no mounts
// of the store's layers.
func (e *Env) assertNoContainers() {
	e.t.Helper()
	if out := e.Must("ps", "-aq"); out != "" {
		e.t.Fatalf("containers left behind: %q", out)
	}
	mounts := e.Must("unshare", "cat", "/proc/self/mountinfo")
	for _, l := range strings.Split(mounts, "\n") {
		if strings.Contains(l, e.Root) && strings.Contains(l, "merged") {
			e.t.Fatalf("a container mount was left behind: %s", l)
		}
	}
}

func TestRunBasics(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	if out := e.Must("run", "--rm", "busybox", "echo", "hello", "world"); out != "hello world\n" {
		t.Fatalf("echo: %q", out)
	}
	r := e.mustCode(3, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.Stdout != "out\n" || !strings.Contains(r.Stderr, "err\n") {
		t.Fatalf("streams: %q %q", r.Stdout, r.Stderr)
	}
	// Environment: image ENV, -e (with commas), --env-file, PATH, HOSTNAME, HOME.
	envFile := filepath.Join(e.Dir, "env")
	os.WriteFile(envFile, []byte("# comment\nFROM_FILE=f\nBOTH=file\n"), 0o644)
	e.Setenv("PASSED_ON", "p")
	out := e.Must("run", "--rm", "--env-file", envFile, "-e", "A=b,c", "-e", "BOTH=flag", "-e", "PASSED_ON", "--hostname", "box",
		"busybox", "sh", "-c", `echo "$A|$FROM_FILE|$BOTH|$PASSED_ON|$HOSTNAME|$HOME|$PATH"; hostname`)
	if want := "b,c|f|flag|p|box|/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nbox\n"; out != want {
		t.Fatalf("env: %q, want %q", out, want)
	}
	// -w creates a missing directory; -u by name and number; --entrypoint resets CMD.
	if out := e.Must("run", "--rm", "-w", "/new/dir", "-u", "user", "busybox", "sh", "-c", "pwd; id -u; id -g; echo $HOME"); out != "/new/dir\n1000\n1000\n/home/user\n" {
		t.Fatalf("-w/-u: %q", out)
	}
	if out := e.Must("run", "--rm", "-u", "4242:4343", "busybox", "id"); !strings.Contains(out, "uid=4242 gid=4343") {
		t.Fatalf("numeric -u: %q", out)
	}
	if out := e.Must("run", "--rm", "--entrypoint", "echo", "busybox"); out != "\n" {
		t.Fatalf("--entrypoint did not drop CMD: %q", out)
	}
	if out := e.Must("run", "--rm", "--entrypoint", "echo", "busybox", "x"); out != "x\n" {
		t.Fatalf("--entrypoint with args: %q", out)
	}
	// Stdin with -i only.
	if r := e.RunIn("piped\n", "run", "--rm", "-i", "busybox", "cat"); r.Stdout != "piped\n" {
		t.Fatalf("-i: %q (%s)", r.Stdout, r.Stderr)
	}
	if r := e.RunIn("piped\n", "run", "--rm", "busybox", "cat"); r.Stdout != "" || r.Code != 0 {
		t.Fatalf("stdin without -i: %q exit %d", r.Stdout, r.Code)
	}
	// --network none has loopback only; --network host sees the host's interfaces.
	if out := e.Must("run", "--rm", "--network", "none", "busybox", "sh", "-c", "ls /sys/class/net"); strings.TrimSpace(out) != "lo" {
		t.Fatalf("--network none interfaces: %q", out)
	}
	// (Containers of parallel tests come and go meanwhile: their veths,
	// nkv*, and their networks' bridges, nk-*, are left out of the comparison.)
	stable := func(names []string) string {
		var out []string
		for _, n := range names {
			if !strings.HasPrefix(n, "nkv") && !strings.HasPrefix(n, "nk-") {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	ents, _ := os.ReadDir("/sys/class/net")
	var host []string
	for _, d := range ents {
		host = append(host, d.Name())
	}
	if out := e.Must("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net"); stable(strings.Fields(out)) != stable(host) {
		t.Fatalf("--network host interfaces: %q, host has %q", out, host)
	}
	// --init: pid 1 reaps and forwards; the exit code is the command's.
	e.mustCode(5, "run", "--rm", "--init", "busybox", "sh", "-c", "exit 5")
	// --read-only, --tmpfs, --shm-size, --ulimit, --cap-drop, no-new-privileges.
	out = e.Must("run", "--rm", "--read-only", "--tmpfs", "/scratch:size=1m", "--shm-size", "2m", "--ulimit", "nofile=123:456",
		"--cap-drop", "ALL", "--security-opt", "no-new-privileges", "busybox", "sh", "-c",
		`touch /x 2>/dev/null && echo rootwritable; touch /scratch/y && echo tmpfsok; df -k /dev/shm | tail -1 | awk '{print $2}'; ulimit -n; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status`)
	if want := "tmpfsok\n2048\n123\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n"; out != want {
		t.Fatalf("restrictions: %q, want %q", out, want)
	}
	e.assertNoContainers()
}

func TestRunBadInput(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	cases := []struct {
		code int
		want string
		args []string
	}{
		{125, "image nosuch/image:1 not found locally", []string{"run", "--rm", "--pull", "never", "nosuch/image:1"}},
		{127, `"nosuchcmd": executable file not found`, []string{"run", "--rm", "busybox", "nosuchcmd"}},
		{126, "permission denied", []string{"run", "--rm", "busybox", "/etc/passwd"}},
		{125, "working directory /etc/passwd is not a directory", []string{"run", "--rm", "-w", "/etc/passwd", "busybox", "true"}},
		{125, "unable to find user ghost", []string{"run", "--rm", "-u", "ghost", "busybox", "true"}},
		{125, "bind source path does not exist: /no/such/dir", []string{"run", "--rm", "-v", "/no/such/dir:/x", "busybox", "true"}},
		{125, `invalid -p "80:80:80:80"`, []string{"run", "--rm", "-p", "80:80:80:80", "busybox", "true"}},
		{125, `invalid -p "http"`, []string{"run", "--rm", "-p", "http", "busybox", "true"}},
		{125, `invalid -p "99999:80"`, []string{"run", "--rm", "-p", "99999:80", "busybox", "true"}},
		{125, "unknown capability", []string{"run", "--rm", "--cap-add", "FLY", "busybox", "true"}},
		{125, "cgroup v1", []string{"run", "--rm", "--memory", "64m", "busybox", "true"}},
		{125, "invalid volume specification", []string{"run", "--rm", "-v", "a:b:c:d", "busybox", "true"}},
		{125, "invalid --mount", []string{"run", "--rm", "--mount", "type=nfs,target=/x", "busybox", "true"}},
	}
	for _, c := range cases {
		r := e.mustCode(c.code, c.args...)
		if !strings.Contains(r.Stderr, c.want) {
			t.Errorf("nook %s: stderr %q does not say %q", strings.Join(c.args, " "), r.Stderr, c.want)
		}
	}
	// Without --rm a failed start leaves an exited container with the reason.
	e.mustCode(127, "run", "--name", "failed", "busybox", "nosuchcmd")
	if out := e.Must("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "failed"); out != "exited 127\n" {
		t.Fatalf("failed container state: %q", out)
	}
	e.Must("rm", "failed")
	if _, err := os.Stat("/no/such/dir"); err == nil {
		t.Fatal("a missing bind source was created")
	}
	e.assertNoContainers()
}

func TestRunIsolation(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	marker := filepath.Join(e.Dir, "host-marker")
	os.WriteFile(marker, []byte("secret"), 0o644)
	out := e.Must("run", "--rm", "busybox", "sh", "-c", strings.Join([]string{
		"test $(ls -d /proc/[0-9]* | wc -l) -lt 8 && tr '\\0' ' ' < /proc/1/cmdline | grep -q '^sh -c' && echo onlyown", // no host processes
		"cat " + marker + " 2>/dev/null || echo nohostfile",                                                             // host files are not there
		"echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo procsysro",                                           // /proc/sys read-only
		"touch /sys/kernel/x 2>/dev/null || echo sysro",
		"mknod /tmp/null c 1 3 2>/dev/null || echo nomknod",
		"mknod /tmp/disk b 8 0 2>/dev/null || echo nomknodblock",
		"mkfifo /tmp/fifo && echo fifook",
		"cat /proc/kcore 2>/dev/null | head -c1 | wc -c",
		"ls /proc/acpi | wc -l",
	}, "; "))
	want := "onlyown\nnohostfile\nprocsysro\nsysro\nnomknod\nnomknodblock\nfifook\n0\n0\n"
	if out != want {
		t.Fatalf("isolation checks: %q, want %q", out, want)
	}
	// /proc/1/exe of the --init reaper (nook itself) cannot be written, and
	// nook's binary on the host stays as it was (CVE-2019-5736).
	before := fileSum(t, nookBin)
	out = e.Must("run", "--rm", "--init", "busybox", "sh", "-c",
		"echo pwned >> /proc/1/exe 2>/dev/null && echo WROTE; cat /proc/1/exe > /tmp/x 2>/dev/null; "+
			"dd if=/dev/zero of=/proc/1/exe bs=1 count=1 conv=notrunc 2>/dev/null && echo WROTE2; echo done")
	if strings.Contains(out, "WROTE") || !strings.Contains(out, "done") {
		t.Fatalf("/proc/1/exe was writable: %q", out)
	}
	if fileSum(t, nookBin) != before {
		t.Fatal("nook's binary changed")
	}
	// No descriptor of the invoker leads out (CVE-2024-21626): a workdir
	// through /proc/self/fd/N fails, or stays inside the container.
	f, err := os.Open(e.Dir) // a directory descriptor the invoking process holds
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for n := 3; n <= 10; n++ {
		cmd := exec.Command(nookBin, "run", "--rm", "-w", fmt.Sprintf("/proc/self/fd/%d", n), "busybox", "sh", "-c", "pwd; ls")
		cmd.Env = append(e.env, "NOOK_ROOT="+e.Root)
		cmd.ExtraFiles = []*os.File{f, f, f, f, f, f, f, f}
		b, _ := cmd.CombinedOutput()
		if strings.Contains(string(b), "host-marker") || strings.Contains(string(b), e.Dir) {
			t.Fatalf("-w /proc/self/fd/%d reached the host: %s", n, b)
		}
	}
	e.assertNoContainers()
}

func fileSum(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestRunVolumes(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	src := filepath.Join(e.Dir, "src")
	os.MkdirAll(src, 0o777)
	os.Chmod(src, 0o777)
	os.WriteFile(filepath.Join(src, "in"), []byte("from host\n"), 0o644)
	out := e.Must("run", "--rm", "-v", src+":/data", "busybox", "sh", "-c", "cat /data/in; echo new > /data/out")
	if out != "from host\n" {
		t.Fatalf("bind: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(src, "out")); string(b) != "new\n" {
		t.Fatalf("write through a bind: %q", b)
	}
	e.mustCode(1, "run", "--rm", "-v", src+":/data:ro,z", "busybox", "touch", "/data/x")
	e.Must("run", "--rm", "--mount", "type=bind,source="+src+",target=/m,readonly", "busybox", "cat", "/m/in")
	// A named volume outlives containers and is filled from the image on first use.
	out = e.Must("run", "--rm", "-v", "vol1:/etc", "busybox", "sh", "-c", "cat /etc/group | head -1; echo kept > /etc/mine")
	if out != "root:x:0:\n" {
		t.Fatalf("volume populated from the image: %q", out)
	}
	if out := e.Must("run", "--rm", "--mount", "type=volume,source=vol1,target=/v", "busybox", "cat", "/v/mine"); out != "kept\n" {
		t.Fatalf("named volume content: %q", out)
	}
	if out := e.Must("run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m", "busybox", "sh", "-c", "df -k /t | tail -1 | awk '{print $2}'"); out != "1024\n" {
		t.Fatalf("tmpfs mount: %q", out)
	}
	e.assertNoContainers()
}

func TestRunRecordsPsInspectRm(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	e.mustCode(3, "run", "--name", "web", "--label", "k=v", "busybox", "sh", "-c", "exit 3")
	out := e.Must("ps", "-a", "--format", "{{.Names}}|{{.Status}}|{{.Image}}|{{.Label \"k\"}}")
	if !strings.HasPrefix(out, "web|Exited (3) ") || !strings.HasSuffix(out, "|busybox|v\n") {
		t.Fatalf("ps -a: %q", out)
	}
	if out := e.Must("ps", "-q"); out != "" {
		t.Fatalf("ps without -a lists an exited container: %q", out)
	}
	if out := e.Must("ps", "-a", "--filter", "status=exited", "--filter", "label=k=v", "-q"); len(strings.TrimSpace(out)) != 12 {
		t.Fatalf("ps filters: %q", out)
	}
	var docs []map[string]any
	if err := json.Unmarshal([]byte(e.Must("inspect", "web")), &docs); err != nil || len(docs) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	d := docs[0]
	if d["Name"] != "/web" || d["State"].(map[string]any)["ExitCode"].(float64) != 3 || d["OCIConfig"] == nil {
		t.Fatalf("inspect document: %v", d)
	}
	oci := d["OCIConfig"].(map[string]any)
	if oci["ociVersion"] == nil || oci["process"].(map[string]any)["args"] == nil {
		t.Fatalf("OCIConfig: %v", oci)
	}
	// The name is taken until rm.
	e.Fails([]string{`"/web" is already in use`}, "run", "--name", "web", "busybox", "true")
	// inspect falls through to images; --type restricts.
	e.Must("inspect", "--format", "{{.Id}}", "busybox")
	e.Fails([]string{"no such container"}, "inspect", "--type", "container", "busybox")
	// A created container starts later... and rm refuses unknown names.
	e.Fails([]string{"no such container: nope"}, "rm", "nope")
	e.Must("rm", "web")
	e.assertNoContainers()
}

func TestRunSignals(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	start := func(args ...string) (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command(nookBin, args...)
		cmd.Env = e.env
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	waitRunning := func() {
		for i := 0; i < 300; i++ {
			if strings.TrimSpace(e.Must("ps", "-q")) != "" {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("the container never showed as running")
	}
	// SIGTERM is forwarded: a container that traps it exits with its code.
	cmd, out := start("run", "--rm", "busybox", "sh", "-c", `trap "echo got; exit 42" TERM; echo ready; while true; do sleep 0.1; done`)
	waitRunning()
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 42 || !strings.Contains(out.String(), "got") {
		t.Fatalf("SIGTERM: %v, output %q", err, out.String())
	}
	// A container that ignores SIGINT: the second Ctrl-C kills it, --rm cleans up.
	cmd, _ = start("run", "--rm", "busybox", "sleep", "100")
	waitRunning()
	cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 137 {
			t.Fatalf("double SIGINT: %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("double SIGINT did not stop the container")
	}
	// kill -9 of the supervising nook: the container dies with it and the
	// record shows exited, never running; rm -f cleans up.
	cmd, _ = start("run", "--name", "orphan", "busybox", "sleep", "100")
	waitRunning()
	cmd.Process.Kill()
	cmd.Wait()
	var status string
	for i := 0; i < 100; i++ {
		status = e.Must("ps", "-a", "--format", "{{.Names}} {{.State}}")
		if status == "orphan exited\n" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status != "orphan exited\n" {
		t.Fatalf("after kill -9 of nook: %q", status)
	}
	e.Must("rm", "-f", "orphan")
	e.assertNoContainers()
}

// openPty returns a pty master and its slave.
func openPty(t *testing.T) (*os.File, *os.File) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws := [4]uint16{33, 101, 0, 0}
	syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
	return master, slave
}

func TestRunTTY(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	shellOnPty(t, e, "/dev/pts/0", "run", "--rm", "-it", "busybox", "sh")
	e.assertNoContainers()
}

func TestRunConcurrent(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				r := e.Run("run", "--rm", "--name", fmt.Sprintf("c%d-%d", w, i), "busybox", "sh", "-c", "echo $HOSTNAME")
				if r.Code != 0 || len(strings.TrimSpace(r.Stdout)) != 12 {
					errs <- fmt.Sprintf("worker %d run %d: exit %d %q %s", w, i, r.Code, r.Stdout, r.Stderr)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
	e.assertNoContainers()
}

func TestVolumeAndContainerCommands(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	if out := e.Must("volume", "create", "--label", "k=v", "data"); out != "data\n" {
		t.Fatalf("volume create: %q", out)
	}
	e.Must("run", "--rm", "-v", "data:/d", "busybox", "sh", "-c", "echo hi > /d/f")
	if out := e.Must("volume", "ls", "-q"); out != "data\n" {
		t.Fatalf("volume ls: %q", out)
	}
	if out := e.Must("volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{index .Labels \"k\"}}", "data"); out != "data local v\n" {
		t.Fatalf("volume inspect: %q", out)
	}
	// A volume in use cannot go; a created container starts with start -a.
	id := strings.TrimSpace(e.Must("create", "--name", "job", "-v", "data:/d", "busybox", "cat", "/d/f"))
	if len(id) != 64 {
		t.Fatalf("create printed %q", id)
	}
	e.Fails([]string{"volume data is in use by container job"}, "volume", "rm", "data")
	if out := e.Must("start", "-a", "job"); out != "hi\n" {
		t.Fatalf("start -a: %q", out)
	}
	if out := e.Must("container", "ls", "-a", "--format", "{{.Names}} {{.State}}"); out != "job exited\n" {
		t.Fatalf("container ls: %q", out)
	}
	if out := e.Must("container", "prune", "-f"); !strings.Contains(out, id) {
		t.Fatalf("container prune: %q", out)
	}
	e.Must("volume", "rm", "data")
	e.Fails([]string{"no such volume: data"}, "volume", "inspect", "data")
	// Anonymous volumes go with --rm; volume prune removes unused ones.
	e.Must("run", "-v", "/anon", "--name", "keep", "busybox", "true")
	if out := e.Must("volume", "ls", "-q"); len(strings.TrimSpace(out)) != 64 {
		t.Fatalf("anonymous volume: %q", out)
	}
	e.Must("rm", "-v", "keep")
	if out := e.Must("volume", "ls", "-q"); out != "" {
		t.Fatalf("rm -v left %q", out)
	}
	e.assertNoContainers()
}

// shellOnPty runs nook with args (a shell with -it) on a pty of 33x101,
// checks the terminal's size, name (ttyName) and TERM inside, and that
// "exit 9" comes back as nook's exit code.
func shellOnPty(t *testing.T, e *Env, ttyName string, args ...string) {
	t.Helper()
	master, slave := openPty(t)
	defer master.Close()
	cmd := exec.Command(nookBin, args...)
	cmd.Env = e.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var mu sync.Mutex
	var buf strings.Builder
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitFor := func(s string) {
		for i := 0; i < 200; i++ {
			mu.Lock()
			ok := strings.Contains(buf.String(), s)
			mu.Unlock()
			if ok {
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("never saw %q in %q", s, buf.String())
	}
	waitFor("# ")
	master.Write([]byte("stty size; tty; echo T=$TERM\n"))
	waitFor("33 101")
	waitFor(ttyName)
	waitFor("T=xterm")
	master.Write([]byte("exit 9\n"))
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 9 {
		t.Fatalf("exit code through the pty: %v", err)
	}
}
