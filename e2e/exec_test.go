package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// removeContainersAtEnd removes every container of the env before its
// store is reset (a reset does not yet unmount created containers).
func (e *Env) removeContainersAtEnd() {
	e.t.Cleanup(func() {
		if ids := strings.Fields(e.Run("ps", "-aq", "--no-trunc").Stdout); len(ids) > 0 {
			e.Run(append([]string{"rm", "-f"}, ids...)...)
		}
	})
}

// bgContainer starts a detached container (`nook run -d --name NAME
// ARGS...`), waits until it runs, and removes it when the test ends.
func (e *Env) bgContainer(name string, args ...string) {
	e.t.Helper()
	id := strings.TrimSpace(e.Must(append([]string{"run", "-d", "--name", name}, args...)...))
	e.t.Cleanup(func() { e.Run("rm", "-f", id) }) // by ID: the test may rename it
	for i := 0; i < 400; i++ {
		if r := e.Run("inspect", "--format", "{{.State.Status}}", id); strings.TrimSpace(r.Stdout) == "running" {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	e.t.Fatalf("container %s never ran: %s", name, e.Run("logs", id).Stderr)
}

func TestExec(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	e.bgContainer("box", "-e", "FROM_RUN=r", "-w", "/tmp", "busybox", "sleep", "300")

	if out := e.Must("exec", "box", "sh", "-c", "echo hello; pwd; id -u"); out != "hello\n/tmp\n0\n" {
		t.Fatalf("exec: %q", out)
	}
	// Exit codes: the command's; 126 cannot invoke; 127 not found; 125 nook.
	e.mustCode(7, "exec", "box", "sh", "-c", "exit 7")
	r := e.mustCode(127, "exec", "box", "nosuchcmd")
	if !strings.Contains(r.Stderr, `"nosuchcmd": executable file not found in $PATH`) {
		t.Fatalf("127: %s", r.Stderr)
	}
	e.mustCode(126, "exec", "box", "/etc/passwd")
	e.mustCode(126, "exec", "-w", "/no/such/dir", "box", "pwd")
	if r := e.mustCode(126, "exec", "-u", "ghost", "box", "id"); !strings.Contains(r.Stderr, "unable to find user ghost") {
		t.Fatalf("-u ghost: %s", r.Stderr)
	}
	if r := e.mustCode(125, "exec", "nosuch", "true"); !strings.Contains(r.Stderr, "no such container: nosuch") {
		t.Fatalf("unknown container: %s", r.Stderr)
	}
	e.mustCode(125, "exec", "box")
	// Environment: the container's, then --env-file and -e; HOME from the
	// exec's user; TERM only with -t.
	envFile := filepath.Join(e.Dir, "exec.env")
	os.WriteFile(envFile, []byte("FROM_FILE=f\nBOTH=file\n"), 0o644)
	out := e.Must("exec", "--env-file", envFile, "-e", "BOTH=flag", "-e", "A=b,c", "box", "sh", "-c",
		`echo "$FROM_RUN|$FROM_FILE|$BOTH|$A|$HOME|$PATH|${TERM-unset}"`)
	if want := "r|f|flag|b,c|/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|unset\n"; out != want {
		t.Fatalf("env: %q, want %q", out, want)
	}
	// -u and -w, by name and number; the user's groups from the container.
	if out := e.Must("exec", "-u", "user", "-w", "/home", "box", "sh", "-c", "id; pwd; echo $HOME"); out != "uid=1000(user) gid=1000(user)\n/home\n/home/user\n" {
		t.Fatalf("-u user -w: %q", out)
	}
	if out := e.Must("exec", "-u", "4242:4343", "box", "id"); !strings.HasPrefix(out, "uid=4242 gid=4343") {
		t.Fatalf("-u 4242:4343: %q", out)
	}
	// Stdin only with -i.
	if r := e.RunIn("piped\n", "exec", "-i", "box", "cat"); r.Stdout != "piped\n" || r.Code != 0 {
		t.Fatalf("-i: %q %s", r.Stdout, r.Stderr)
	}
	if r := e.RunIn("piped\n", "exec", "box", "cat"); r.Stdout != "" || r.Code != 0 {
		t.Fatalf("stdin without -i: %q exit %d", r.Stdout, r.Code)
	}
	// The exec'd process shares the container's namespaces: its pid 1, its
	// hostname, its network, its files.
	out = e.Must("exec", "box", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; hostname; ls /sys/class/net | tr '\\n' ' '; echo")
	host := e.Must("inspect", "--format", "{{.Config.Hostname}}", "box")
	if lines := strings.Split(out, "\n"); len(lines) < 3 || lines[0] != "sleep 300 " || lines[1] != strings.TrimSpace(host) {
		t.Fatalf("namespaces: %q (hostname %q)", out, host)
	}
	e.Must("exec", "box", "sh", "-c", "echo written > /tmp/by-exec")
	if out := e.Must("exec", "box", "cat", "/tmp/by-exec"); out != "written\n" {
		t.Fatalf("files: %q", out)
	}
}

func TestExecSecurity(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	e.bgContainer("sec", "--cap-drop", "NET_RAW", "--security-opt", "no-new-privileges", "busybox", "sleep", "300")
	status := func(args ...string) string {
		return e.Must(append(append([]string{"exec"}, args...), "sec", "sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status")...)
	}
	pid1 := e.Must("exec", "sec", "sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/1/status")
	if got := status(); got != pid1 {
		t.Fatalf("exec's capabilities, no_new_privs and seccomp differ from the container's:\n%s\nvs pid 1:\n%s", got, pid1)
	}
	if !strings.Contains(pid1, "NoNewPrivs:\t1") || !strings.Contains(pid1, "Seccomp:\t2") {
		t.Fatalf("container status: %s", pid1)
	}
	// --privileged: every capability nook itself may have (its bounding
	// set, which the exec'd process keeps whole).
	got := status("--privileged")
	field := func(s, k string) string {
		for _, l := range strings.Split(s, "\n") {
			if v, ok := strings.CutPrefix(l, k+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	if field(got, "CapEff") != field(got, "CapBnd") || field(got, "CapEff") == field(pid1, "CapEff") {
		t.Fatalf("--privileged: %s (container: %s)", got, pid1)
	}
	// The process exec waits with is nook itself in the container: it can
	// be neither read nor written through /proc (CVE-2019-5736).
	before := fileSum(t, nookBin)
	out := e.Must("exec", "sec", "sh", "-c",
		"p=$PPID; tr '\\0' ' ' < /proc/$p/cmdline; echo; echo pwned >> /proc/$p/exe 2>/dev/null && echo WROTE; "+
			"cat /proc/$p/exe > /tmp/x 2>/dev/null && echo READ; ls -l /proc/$p/exe 2>/dev/null | grep -q nook && echo LINK; echo done")
	if strings.Contains(out, "WROTE") || strings.Contains(out, "READ") || strings.Contains(out, "LINK") || !strings.Contains(out, "done") {
		t.Fatalf("/proc/PPID/exe of exec's process: %q", out)
	}
	if fileSum(t, nookBin) != before {
		t.Fatal("nook's binary changed")
	}
	// No descriptor of the invoking process reaches the container
	// (CVE-2024-21626): a working directory through /proc/self/fd/N fails
	// or stays inside.
	f, err := os.Open(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	os.WriteFile(filepath.Join(e.Dir, "host-marker"), []byte("x"), 0o644)
	for n := 3; n <= 10; n++ {
		cmd := exec.Command(nookBin, "exec", "-w", fmt.Sprintf("/proc/self/fd/%d", n), "sec", "sh", "-c", "pwd; ls; ls /proc/self/fd")
		cmd.Env = e.env
		cmd.ExtraFiles = []*os.File{f, f, f, f, f, f, f, f}
		b, _ := cmd.CombinedOutput()
		if strings.Contains(string(b), "host-marker") || strings.Contains(string(b), e.Dir) {
			t.Fatalf("exec -w /proc/self/fd/%d reached the host: %s", n, b)
		}
	}
	cmd := exec.Command(nookBin, "exec", "sec", "ls", "/proc/self/fd")
	cmd.Env = e.env
	cmd.ExtraFiles = []*os.File{f, f, f, f, f}
	if b, err := cmd.Output(); err != nil || strings.Fields(string(b))[len(strings.Fields(string(b)))-1] != "3" {
		// 0, 1, 2 and ls's own directory descriptor.
		t.Fatalf("descriptors in the exec'd process: %q %v", b, err)
	}
}

func TestExecDetachAndReaping(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	e.bgContainer("reap", "--init", "busybox", "sleep", "300")
	start := time.Now()
	if out := e.Must("exec", "-d", "reap", "sh", "-c", "sleep 1; echo done > /tmp/detached"); out != "" {
		t.Fatalf("exec -d printed %q", out)
	}
	if time.Since(start) > 900*time.Millisecond {
		t.Fatalf("exec -d waited for the command (%v)", time.Since(start))
	}
	// The detached command's parent is the container's pid 1.
	out := e.Must("exec", "reap", "sh", "-c", "for p in /proc/[0-9]*; do if grep -q 'sleep 1' $p/cmdline 2>/dev/null; then awk '/^PPid/{print $2}' $p/status; fi; done")
	if !strings.Contains(out, "1\n") {
		t.Fatalf("parent of the detached command: %q", out)
	}
	var got string
	for i := 0; i < 100; i++ {
		if got = e.Run("exec", "reap", "cat", "/tmp/detached").Stdout; got == "done\n" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got != "done\n" {
		t.Fatalf("the detached command did not finish: %q", got)
	}
	// pid 1 (--init) reaped it: no zombie left.
	time.Sleep(200 * time.Millisecond)
	if out := e.Must("exec", "reap", "sh", "-c", "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l"); strings.TrimSpace(out) != "0" {
		t.Fatalf("zombies in the container: %s", out)
	}
	// A failing command under -d still reports its exit code.
	e.mustCode(127, "exec", "-d", "reap", "nosuchcmd")
	// SIGTERM to nook exec reaches the command.
	cmd := exec.Command(nookBin, "exec", "reap", "sh", "-c", `trap "echo got; exit 42" TERM; echo ready; while true; do sleep 0.1; done`)
	cmd.Env = e.env
	var buf strings.Builder
	var mu sync.Mutex
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		mu.Lock()
		ready := strings.Contains(buf.String(), "ready")
		mu.Unlock()
		if ready {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 42 || !strings.Contains(buf.String(), "got") {
		t.Fatalf("SIGTERM: %v, output %q", err, buf.String())
	}
	// A stopped container: 125 and docker's message.
	e.Must("rm", "-f", "reap")
	e.mustCode(3, "run", "--name", "ended", "busybox", "sh", "-c", "exit 3")
	if r := e.mustCode(125, "exec", "ended", "true"); !strings.Contains(r.Stderr, "container ended is not running") {
		t.Fatalf("exec in a stopped container: %s", r.Stderr)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestExecTTY(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	e.bgContainer("tty", "busybox", "sleep", "300")
	shellOnPty(t, e, "/dev/pts/", "exec", "-it", "tty", "sh")
}

func TestTopPortRename(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.removeContainersAtEnd()
	e.Busybox()
	e.bgContainer("web", "-p", "127.0.0.1::80", "-p", "127.0.0.1::53/udp", "busybox", "sleep", "300")
	// top: docker's columns, host pids, only the container's processes.
	out := e.Must("top", "web")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "UID PID PPID C STIME TTY TIME CMD" {
		t.Fatalf("top titles: %q", lines[0])
	}
	pid := strings.TrimSpace(e.Must("inspect", "--format", "{{.State.Pid}}", "web"))
	if len(lines) != 2 || strings.Fields(lines[1])[1] != pid || !strings.HasSuffix(lines[1], "sleep 300") {
		t.Fatalf("top rows (pid 1 is %s): %q", pid, out)
	}
	if out := e.Must("top", "web", "-o", "pid,args"); !strings.Contains(strings.Join(strings.Fields(out), " "), "PID COMMAND "+pid+" sleep 300") {
		t.Fatalf("top with ps options: %q", out)
	}
	// port: docker's lines, with and without a filter.
	out = e.Must("port", "web")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "53/udp -> 127.0.0.1:") || !strings.HasPrefix(lines[1], "80/tcp -> 127.0.0.1:") {
		t.Fatalf("port: %q", out)
	}
	if out := e.Must("port", "web", "80/tcp"); "80/tcp -> "+strings.TrimSpace(out) != lines[1] {
		t.Fatalf("port web 80/tcp: %q", out)
	}
	if r := e.Fails([]string{"no public port '81/tcp' published for web"}, "port", "web", "81"); r.Code != 1 {
		t.Fatalf("port of an unpublished port: exit %d", r.Code)
	}
	// rename: the new name works everywhere, the old one is free, conflicts are clear.
	e.Must("rename", "web", "site")
	if out := e.Must("ps", "--format", "{{.Names}}"); out != "site\n" {
		t.Fatalf("ps after rename: %q", out)
	}
	e.Must("exec", "site", "true")
	e.Fails([]string{"no such container: web"}, "exec", "web", "true")
	e.Must("create", "--name", "other", "busybox", "true")
	if r := e.Fails([]string{`the container name "/other" is already in use by container`}, "rename", "site", "other"); r.Code != 125 {
		t.Fatalf("rename conflict: exit %d", r.Code)
	}
	e.Fails([]string{"invalid container name"}, "rename", "site", "no/slash")
	e.Fails([]string{"the same as the current one"}, "rename", "site", "site")
	e.Must("rename", "other", "web")
	if out := e.Must("ps", "-a", "--format", "{{.Names}}"); out != "web\nsite\n" {
		t.Fatalf("ps -a after renames: %q", out)
	}
	e.Fails([]string{"container web is not running"}, "exec", "web", "true")
	e.Fails([]string{"container web is not running"}, "top", "web")
}
