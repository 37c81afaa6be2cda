// Package e2e drives the real nook binary end to end: as the invoking user
// (rootless when that user is unprivileged, which 'make test' arranges) and
// as root. Every test gets a private store, so tests run in parallel.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	nookBin string // the binary under test
	workDir string // scratch space of this test run (host-owned files only)
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	workDir, err = os.MkdirTemp("", "nook-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(workDir)
	nookBin = os.Getenv("NOOK_BIN")
	if nookBin == "" {
		nookBin = filepath.Join(workDir, "nook")
		_, self, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-tags", "exclude_graphdriver_btrfs", "-o", nookBin, ".")
		cmd.Dir = filepath.Dir(filepath.Dir(self))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building nook:", err)
			return 2
		}
	}
	if err := checkPrerequisites(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e prerequisites missing:", err)
		return 2
	}
	return m.Run()
}

// checkPrerequisites fails the run (never skips) when the machine lacks what
// the suite needs, naming the command that fixes it.
func checkPrerequisites() error {
	if _, err := os.Stat(busyboxPath()); err != nil {
		return fmt.Errorf("no static busybox at %s: run 'make test-deps' as root (apt-get install busybox-static)", busyboxPath())
	}
	if os.Getuid() != 0 {
		if _, err := exec.LookPath("newuidmap"); err != nil {
			return fmt.Errorf("newuidmap not found: run 'make test-deps' as root (apt-get install uidmap)")
		}
	}
	return nil
}

func busyboxPath() string {
	if p := os.Getenv("NOOK_TEST_BUSYBOX"); p != "" {
		return p
	}
	return "/bin/busybox"
}

// Rootless reports whether this suite runs as an unprivileged user.
func Rootless() bool { return os.Getuid() != 0 }

// Env is a private store for one test.
type Env struct {
	t    testing.TB
	Root string
	Dir  string // a host-owned scratch directory for the test's files
	env  []string
}

// NewEnv makes a private store that is removed (from inside the user's
// namespace, where its files can be removed) when the test ends.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	dir, err := os.MkdirTemp(workDir, strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{t: t, Root: filepath.Join(dir, "root"), Dir: filepath.Join(dir, "files")}
	if err := os.MkdirAll(e.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.env = append(os.Environ(), "NOOK_ROOT="+e.Root)
	t.Cleanup(func() {
		if r := e.Run("system", "reset", "-f"); r.Code != 0 {
			t.Errorf("cleaning up the store %s: %s", e.Root, r.Stderr)
		}
		os.RemoveAll(dir)
	})
	return e
}

// Setenv adds KEY=VALUE to the environment of later commands.
func (e *Env) Setenv(k, v string) { e.env = append(e.env, k+"="+v) }

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int
	Duration       time.Duration
}

// Run runs nook with args and no input.
func (e *Env) Run(args ...string) Result { return e.RunIn("", args...) }

// RunIn runs nook with args and stdin.
func (e *Env) RunIn(stdin string, args ...string) Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nookBin, args...)
	cmd.Env = e.env
	cmd.Dir = e.Dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String(), Duration: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("running nook %v: %v", args, err)
	}
	return r
}

// Must runs nook and fails the test unless it exits 0; it returns stdout.
func (e *Env) Must(args ...string) string {
	e.t.Helper()
	r := e.Run(args...)
	if r.Code != 0 {
		e.t.Fatalf("nook %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Fails runs nook, expects a non-zero exit and stderr matching every want.
func (e *Env) Fails(wants []string, args ...string) Result {
	e.t.Helper()
	r := e.Run(args...)
	if r.Code == 0 {
		e.t.Fatalf("nook %s: succeeded, want failure\nstdout: %s", strings.Join(args, " "), r.Stdout)
	}
	for _, w := range wants {
		if !strings.Contains(r.Stderr, w) {
			e.t.Fatalf("nook %s: stderr %q does not contain %q", strings.Join(args, " "), r.Stderr, w)
		}
	}
	return r
}

var (
	busyboxTarOnce sync.Once
	busyboxTar     string
	busyboxTarErr  error
)

// BusyboxTar is a root filesystem tarball made from the static busybox
// binary: /bin/busybox with applet links, /etc/passwd and /etc/group with
// root, nobody and a user 1000, and /tmp.
func BusyboxTar(t testing.TB) string {
	t.Helper()
	busyboxTarOnce.Do(func() {
		busyboxTar, busyboxTarErr = makeBusyboxTar(filepath.Join(workDir, "busybox.tar"))
	})
	if busyboxTarErr != nil {
		t.Fatal(busyboxTarErr)
	}
	return busyboxTar
}

func makeBusyboxTar(dest string) (string, error) {
	root := dest + ".d"
	for _, d := range []string{"bin", "etc", "tmp", "root", "home/user", "usr/bin", "sbin", "var", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return "", err
	}
	data, err := os.ReadFile(busyboxPath())
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		return "", err
	}
	out, err := exec.Command(busyboxPath(), "--list").Output()
	if err != nil {
		return "", fmt.Errorf("listing busybox applets: %w", err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			return "", err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\nuser:x:1000:\nnobody:x:65534:\n",
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			return "", err
		}
	}
	// Owned by 1000 inside the image, as real images have such files.
	args := []string{"-C", root, "--owner=0", "--group=0", "--numeric-owner", "-cf", dest, "."}
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("tar: %v: %s", err, out)
	}
	return dest, nil
}

// Busybox imports the busybox image into the env's store as name (default
// "busybox") with CMD ["sh"].
func (e *Env) Busybox(name ...string) string {
	e.t.Helper()
	n := "busybox"
	if len(name) > 0 {
		n = name[0]
	}
	e.Must("import", "--change", `CMD ["sh"]`, BusyboxTar(e.t), n)
	return n
}
