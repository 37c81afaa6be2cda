package e2e

// The per-user holder: started by the first command that needs it, killed
// with kill -9 and started again, gone after its idle time; and the
// single-id mapping of a user without subordinate ids or without
// newuidmap. Each test gets a private XDG_RUNTIME_DIR, so its holder is its
// own and other work's holders are never touched.

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holderDir is the holder's state directory under a runtime dir.
func holderDir(runtime string) string { return filepath.Join(runtime, "nook", "holder") }

// holderAlive reports whether a holder holds the lock in its state dir.
func holderAlive(runtime string) bool {
	f, err := os.Open(filepath.Join(holderDir(runtime), "lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	return errors.Is(err, syscall.EWOULDBLOCK)
}

// holderPIDs are the holder's pause process, rootlesskit child and parent.
type holderPIDs struct{ pause, child, parent int }

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

func readHolder(t testing.TB, runtime string) holderPIDs {
	t.Helper()
	h := holderPIDs{
		pause: readPID(filepath.Join(holderDir(runtime), "ready")),
		child: readPID(filepath.Join(holderDir(runtime), "child_pid")),
	}
	if h.pause == 0 || h.child == 0 {
		t.Fatalf("no holder in %s (ready %d, child_pid %d)", runtime, h.pause, h.child)
	}
	h.parent = ppid(h.child)
	return h
}

// waitHolderGone waits until no holder holds the lock of runtime.
func waitHolderGone(runtime string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !holderAlive(runtime) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return !holderAlive(runtime)
}

// privateRuntime gives later commands of e their own XDG_RUNTIME_DIR (and
// so their own holder), stopped when the test ends. Holders left by the
// test exit by themselves after idle.
func privateRuntime(t *testing.T, e *Env, idle string) string {
	t.Helper()
	if !Rootless() {
		t.Fatal("privateRuntime is for rootless tests")
	}
	// Short: rootlesskit's sockets live under it.
	dir, err := os.MkdirTemp("", "nkrt-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old, hadOld := os.LookupEnv("XDG_RUNTIME_DIR")
	e.Setenv("XDG_RUNTIME_DIR", dir)
	e.Setenv("NOOK_HOLDER_IDLE", idle)
	t.Cleanup(func() {
		stopHolder(t, dir)
		// The store's own clean-up (registered earlier, so run later)
		// then goes through the user's usual holder.
		if hadOld {
			e.Setenv("XDG_RUNTIME_DIR", old)
		} else {
			e.env = withoutEnv(e.env, "XDG_RUNTIME_DIR")
		}
		os.RemoveAll(dir)
	})
	return dir
}

func withoutEnv(env []string, key string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// stopHolder ends the holder of runtime: SIGTERM to its pause process and
// child (as 'nook system reset' does), then SIGKILL to what is left.
func stopHolder(t testing.TB, runtime string) {
	if !holderAlive(runtime) {
		return
	}
	pause := readPID(filepath.Join(holderDir(runtime), "ready"))
	child := readPID(filepath.Join(holderDir(runtime), "child_pid"))
	parent := 0
	if child > 0 {
		parent = ppid(child)
	}
	for _, p := range []int{child, pause} {
		if p > 0 {
			_ = syscall.Kill(p, syscall.SIGTERM)
		}
	}
	if !waitHolderGone(runtime, 5*time.Second) && parent > 1 {
		_ = syscall.Kill(parent, syscall.SIGKILL)
		waitHolderGone(runtime, 5*time.Second)
	}
	if holderAlive(runtime) {
		t.Errorf("the holder in %s did not stop", runtime)
	}
}

func TestHolderFirstCommandAndKill9(t *testing.T) {
	if !Rootless() {
		rootHasNoHolder(t)
		return
	}
	t.Parallel()
	e := NewEnv(t)
	rt := privateRuntime(t, e, "10m")
	if holderAlive(rt) {
		t.Fatal("a holder runs in a fresh runtime dir")
	}
	// First command: starts the holder, then works.
	r := e.Run("images", "-q")
	if r.Code != 0 {
		t.Fatalf("first command with no holder: exit %d: %s", r.Code, r.Stderr)
	}
	t.Logf("first command, holder start included: %v", r.Duration)
	if r.Duration > 10*time.Second {
		t.Errorf("the first command took %v", r.Duration)
	}
	if !holderAlive(rt) {
		t.Fatal("no holder after the first command")
	}
	h1 := readHolder(t, rt)
	if got := strings.TrimSpace(e.Must("info", "--format", "{{.HolderPID}}")); got != strconv.Itoa(h1.pause) {
		t.Errorf("info reports holder pid %s, the holder's ready file says %d", got, h1.pause)
	}
	// A joined command is in the holder's user namespace.
	want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", h1.pause))
	if got := strings.TrimSpace(e.Must("unshare", "readlink", "/proc/self/ns/user")); got != want {
		t.Errorf("unshare runs in user namespace %s, the holder's is %s", got, want)
	}
	e.Busybox()

	// kill -9 of every holder process.
	for _, p := range []int{h1.parent, h1.child, h1.pause} {
		if p > 1 {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
	if !waitHolderGone(rt, 5*time.Second) {
		t.Fatal("the holder still holds its lock after kill -9")
	}
	// The next command starts a new holder and works; the store is intact.
	out := e.Must("images", "--format", "{{.Repository}}")
	if strings.TrimSpace(out) != "busybox" {
		t.Errorf("images after the holder was killed = %q", out)
	}
	h2 := readHolder(t, rt)
	if h2.pause == h1.pause {
		t.Errorf("the holder was not restarted (pid %d)", h2.pause)
	}
	e.Must("tag", "busybox", "again")
	e.Must("image", "inspect", "again")
	e.Must("rmi", "again", "busybox")
}

func TestHolderIdleExit(t *testing.T) {
	if !Rootless() {
		rootHasNoHolder(t)
		return
	}
	t.Parallel()
	e := NewEnv(t)
	rt := privateRuntime(t, e, "1s")
	e.Must("images")
	if !holderAlive(rt) {
		t.Fatal("no holder after a command")
	}
	start := time.Now()
	if !waitHolderGone(rt, 20*time.Second) {
		t.Fatalf("the holder is still there %v after NOOK_HOLDER_IDLE=1s", time.Since(start))
	}
	t.Logf("holder exited %v after the last command (NOOK_HOLDER_IDLE=1s)", time.Since(start))
	// Gone means gone: the state dir is removed, the next command starts
	// a fresh holder.
	r := e.Run("images")
	if r.Code != 0 {
		t.Fatalf("command after the idle exit: %s", r.Stderr)
	}
	// While a command runs, the holder stays.
	e.Setenv("NOOK_HOLDER_IDLE", "1s")
	if r := e.Run("unshare", "sleep", "3"); r.Code != 0 {
		t.Fatalf("unshare sleep: %s", r.Stderr)
	}
}

// ownedTar is a root filesystem with files owned by ids other than root,
// as real images have.
func ownedTar(t testing.TB, dir string) string {
	return writeTar(t, filepath.Join(dir, "owned.tar"), []tarEntry{
		{Name: "home/", Type: tar.TypeDir},
		{Name: "home/user/", Type: tar.TypeDir, UID: 1000, GID: 1000},
		{Name: "home/user/file", Body: "mine\n", UID: 1000, GID: 1000},
		{Name: "nobody", Body: "nobody's\n", UID: 65534, GID: 65534},
	})
}

func hasSubIDs(name string) bool {
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return false
		}
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, name+":") {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// restrictedPath makes a PATH with the tools the holder needs but no
// newuidmap/newgidmap, as on a machine without the uidmap package.
func restrictedPath(t *testing.T) string {
	dir := t.TempDir()
	for _, tool := range []string{"slirp4netns", "nsenter", "ip", "sh", "stat", "ls", "cat", "id", "tar", "readlink", "sleep", "unshare", "mount"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s not found: run 'make test-deps' as root", tool)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSingleMapping covers a user that cannot map more than its own id:
// without an /etc/subuid range (run by 'make test' as a user that has
// none, with NOOK_E2E_SOLO=1), or without newuidmap (simulated for a user
// that has a range). Images still import, every file owned by root, with
// one warning that says what to do.
func TestSingleMapping(t *testing.T) {
	if !Rootless() {
		// Real root maps every id: files keep their owners.
		e := NewEnv(t)
		e.Busybox()
		if m := strings.TrimSpace(e.Must("info", "--format", "{{range .UIDMap}}{{.Inside}}:{{.Outside}}:{{.Size}} {{end}}")); m != "0:0:4294967295" {
			t.Fatalf("root's uid map %q, want the identity 0:0:4294967295", m)
		}
		return
	}
	t.Parallel()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	e := NewEnv(t)
	privateRuntime(t, e, "10m")
	var wants []string
	if os.Getenv("NOOK_E2E_SOLO") != "" {
		if hasSubIDs(u.Username) {
			t.Fatalf("NOOK_E2E_SOLO is set but %s has a range in /etc/subuid and /etc/subgid: run 'make test-deps' as root, which removes it", u.Username)
		}
		wants = []string{"/etc/subuid", "/etc/subgid", fmt.Sprintf("%q", u.Username), u.Username + ":", "docs/rootless.md"}
	} else {
		if !hasSubIDs(u.Username) {
			t.Fatalf("%s has no subordinate ids: run this test with NOOK_E2E_SOLO=1, or add a range (make test-deps)", u.Username)
		}
		e.Setenv("PATH", restrictedPath(t))
		wants = []string{"newuidmap", "apt-get install uidmap", "docs/rootless.md"}
	}
	r := e.Run("import", ownedTar(t, e.Dir), "owned")
	if r.Code != 0 {
		t.Fatalf("import with a single-id mapping failed: %s", r.Stderr)
	}
	t.Logf("stderr of the first command: %s", r.Stderr)
	if n := strings.Count(strings.ToLower(r.Stderr), "warning"); n != 1 {
		t.Errorf("want exactly one warning, got %d: %q", n, r.Stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("the warning does not contain %q: %q", w, r.Stderr)
		}
	}
	// Later commands do not repeat it.
	if r := e.Run("images"); r.Code != 0 || strings.Contains(strings.ToLower(r.Stderr), "warning") {
		t.Errorf("second command: exit %d, stderr %q", r.Code, r.Stderr)
	}
	// info tells it, and shows the one-id map.
	if got := e.Must("info", "--format", "{{.Warning}}"); !strings.Contains(got, wants[0]) {
		t.Errorf("info's warning = %q", got)
	}
	if got := strings.TrimSpace(e.Must("info", "--format", "{{len .UIDMap}}")); got != "1" {
		t.Errorf("uid map has %s ranges, want 1", got)
	}
	// Every file belongs to root in the namespace: to the user on the host.
	out := strings.Fields(e.Must("unshare", "sh", "-c", "stat -c %u:%g "+e.Root+"/overlay/*/diff/home/user/file "+e.Root+"/overlay/*/diff/nobody"))
	if len(out) != 2 || out[0] != "0:0" || out[1] != "0:0" {
		t.Errorf("owners inside the namespace = %v, want 0:0 (squashed)", out)
	}
	found := 0
	filepath.WalkDir(filepath.Join(e.Root, "overlay"), func(p string, d os.DirEntry, err error) error {
		if err == nil && (d.Name() == "file" || d.Name() == "nobody") && strings.Contains(p, "/diff/") {
			fi, err := os.Lstat(p)
			if err == nil {
				found++
				if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Getuid() {
					t.Errorf("%s is owned by host uid %d, want %d", p, st.Uid, os.Getuid())
				}
			}
		}
		return nil
	})
	if found != 2 {
		t.Errorf("found %d of the image's files in the layer", found)
	}
	e.Must("image", "inspect", "owned")
}

// rootHasNoHolder: as real root nook runs in the host's namespaces, so a
// command starts no holder and info says so.
func rootHasNoHolder(t *testing.T) {
	t.Helper()
	e := NewEnv(t)
	e.Busybox()
	if got := strings.TrimSpace(e.Must("info", "--format", "{{.Rootless}} {{.HolderPID}}")); got != "false 0" {
		t.Fatalf("info as root: %q, want \"false 0\" (rootful, no holder)", got)
	}
	self, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	// A container's processes are in root's own user namespace.
	out := e.Must("run", "--rm", "busybox", "readlink", "/proc/1/ns/user")
	if strings.TrimSpace(out) != self {
		t.Fatalf("container user namespace %q, want the host's %q", strings.TrimSpace(out), self)
	}
}
