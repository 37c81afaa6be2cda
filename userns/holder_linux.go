package userns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rootless-containers/rootlesskit/v2/pkg/child"
	"github.com/rootless-containers/rootlesskit/v2/pkg/network"
	"github.com/rootless-containers/rootlesskit/v2/pkg/network/slirp4netns"
	"github.com/rootless-containers/rootlesskit/v2/pkg/parent"
	"github.com/rootless-containers/rootlesskit/v2/pkg/port"
	"github.com/rootless-containers/rootlesskit/v2/pkg/port/builtin"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

const (
	pipeFDEnvKey              = "_NOOK_HOLDER_PIPEFD"
	childUseActivationEnvKey  = "_NOOK_HOLDER_ACTIVATION"
	runActivationHelperEnvKey = "_NOOK_HOLDER_ACTIVATION_HELPER"
	stateDirEnvKey            = "_NOOK_HOLDER_STATEDIR"

	readyFile    = "ready"   // written by the pause process: its pid
	mappingFile  = "mapping" // the advice of a degraded mapping, if any
	slirpMTU     = 65520
	holderArg    = "_holder"
	pauseArg     = "_pause"
	defaultIdle  = 10 * time.Minute
	startTimeout = 15 * time.Second
)

// NetNSPath is the holder's detached network namespace, as seen from a
// joined process.
func NetNSPath() string { return filepath.Join(HolderDir(), "netns") }

// HolderPID is the pid of the holder's pause process when one is ready.
func HolderPID() (int, bool) {
	if !holderAlive(HolderDir()) {
		return 0, false
	}
	b, err := os.ReadFile(filepath.Join(HolderDir(), readyFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

func holderAlive(dir string) bool {
	f, err := os.Open(filepath.Join(dir, parent.StateFileLock))
	if err != nil {
		return false
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	return errors.Is(err, unix.EWOULDBLOCK)
}

// Ensure makes sure this process runs inside the user's namespace. As real
// root, or once joined, it returns at once. Otherwise it starts the holder
// if none is running and re-executes nook so that the join constructor
// enters it; on success it does not return.
func Ensure(stderr io.Writer) error {
	if os.Geteuid() == 0 && (Joined() || os.Getuid() == 0 && os.Getenv("_CONTAINERS_ROOTLESS_UID") == "") {
		return nil
	}
	if v := os.Getenv(envNoJoin); v == "failed" {
		return errors.New("could not enter the user namespace (see the message above); try again, or stop the holder with: pkill -f 'nook _holder'")
	}
	if err := ensurePrivateDir(RuntimeDir()); err != nil {
		return err
	}
	if _, ok := HolderPID(); !ok {
		if err := startHolder(stderr); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the nook executable: %w", err)
	}
	// The constructor joins on the way in; if the holder died in between,
	// it does not, and this process starts one again (at most once more).
	env := os.Environ()
	if os.Getenv("_NOOK_REEXEC") != "" {
		return errors.New("the holder exited right after it started: see " + filepath.Join(RuntimeDir(), "holder.log"))
	}
	env = append(env, "_NOOK_REEXEC=1")
	return syscall.Exec(self, os.Args, env)
}

// startHolder starts a holder unless another invocation is doing so, and
// waits until its pause process reports ready.
func startHolder(stderr io.Writer) error {
	rt := RuntimeDir()
	lk, err := os.OpenFile(filepath.Join(rt, "holder.start.lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("opening the holder start lock: %w", err)
	}
	defer lk.Close()
	if err := unix.Flock(int(lk.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lk.Name(), err)
	}
	defer unix.Flock(int(lk.Fd()), unix.LOCK_UN)
	if _, ok := HolderPID(); ok {
		return nil // another invocation started it while we waited
	}
	// A holder killed with kill -9 leaves its ready file behind. The new
	// holder takes the lock before it clears its state dir, so in between
	// the stale file would pass for the new holder's: remove it first.
	for _, f := range []string{readyFile, mappingFile} {
		if err := os.Remove(filepath.Join(HolderDir(), f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing the stale holder state %s: %w", f, err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(rt, "holder.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", logPath, err)
	}
	defer logf.Close()
	plan := PlanMapping()
	env := append(os.Environ(), envHolder+"=parent",
		fmt.Sprintf("_CONTAINERS_ROOTLESS_UID=%d", HostUID()), fmt.Sprintf("_CONTAINERS_ROOTLESS_GID=%d", HostGID()))
	if plan.Single {
		// Without newuidmap or a subuid range, the holder maps the user's
		// own id only, through nook's own helper (see mapHelperMain).
		fmt.Fprintf(stderr, "nook: warning: %s\n", plan.Advice)
		bin := filepath.Join(rt, "bin")
		if err := os.MkdirAll(bin, 0o700); err != nil {
			return err
		}
		for _, n := range []string{"newuidmap", "newgidmap", "getsubids"} {
			p := filepath.Join(bin, n)
			_ = os.Remove(p)
			if err := os.Symlink(self, p); err != nil {
				return fmt.Errorf("creating the id-map helper %s: %w", p, err)
			}
		}
		env = setEnv(env, "PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		// rootlesskit computes the map before it calls newuidmap, and with
		// /etc/subuid as its source it refuses a user with no range; its
		// dynamic source asks getsubids (here nook, answering no ranges),
		// which gives the single map "0 UID 1".
		env = setEnv(env, "GETSUBIDS", filepath.Join(bin, "getsubids"))
		env = setEnv(env, envSingleMap, "1")
	}
	cmd := exec.Command(self, holderArg)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the holder: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(startTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("the user namespace holder exited during start-up (%v):\n%s\nsee docs/rootless.md", err, bytes.TrimSpace(out))
		case <-deadline:
			_ = cmd.Process.Kill()
			return fmt.Errorf("the user namespace holder did not become ready within %s; its log is %s", startTimeout, logPath)
		case <-tick.C:
			if _, ok := HolderPID(); ok {
				if plan.Single {
					_ = os.WriteFile(filepath.Join(HolderDir(), mappingFile), []byte(plan.Advice), 0o600)
				}
				_ = cmd.Process.Release()
				return nil
			}
		}
	}
}

func setEnv(env []string, k, v string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, k+"=") {
			out = append(out, e)
		}
	}
	return append(out, k+"="+v)
}

// MappingAdvice is the warning recorded when the running holder maps a
// single id, or "".
func MappingAdvice() string {
	b, _ := os.ReadFile(filepath.Join(HolderDir(), mappingFile))
	return string(b)
}

// StopHolder terminates the running holder, if any, and waits for it.
func StopHolder() error {
	pid, ok := HolderPID()
	if !ok {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(HolderDir(), parent.StateFileChildPID))
	if err == nil {
		if cpid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			_ = unix.Kill(cpid, unix.SIGTERM)
		}
	}
	_ = unix.Kill(pid, unix.SIGTERM)
	for i := 0; i < 500 && holderAlive(HolderDir()); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// HolderMain runs the holder's own processes. It reports false when this
// process is not one of them, so that main goes on as usual.
func HolderMain() bool {
	role := os.Getenv(envHolder)
	if role == "" {
		return false
	}
	base := filepath.Base(os.Args[0])
	var err error
	switch {
	case base == "newuidmap" || base == "newgidmap":
		err = mapHelperMain(base, os.Args[1:])
	case base == "getsubids":
		// Single mapping: no subordinate ranges (see startHolder).
		err = nil
	case base == "unshare":
		err = unshareMain(os.Args[1:])
	case os.Getenv(pipeFDEnvKey) != "":
		err = childMain()
	case len(os.Args) > 1 && os.Args[1] == pauseArg:
		err = pauseMain()
	case len(os.Args) > 1 && os.Args[1] == holderArg:
		err = parentMain()
	default:
		return false
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nook holder: %v\n", err)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func parentMain() error {
	logrus.SetOutput(os.Stderr)
	dir := HolderDir()
	if err := parent.InitStateDir(dir); err != nil {
		return fmt.Errorf("initialising %s: %w", dir, err)
	}
	var netDriver network.ParentDriver
	if _, err := exec.LookPath("slirp4netns"); err == nil {
		netDriver, err = slirp4netns.NewParentDriver(os.Stderr, "slirp4netns", slirpMTU, nil, "tap0",
			true /* no access to the host's loopback */, "", false, false, false)
		if err != nil {
			return fmt.Errorf("setting up slirp4netns: %w", err)
		}
	} else {
		fmt.Fprintln(os.Stderr, "slirp4netns not found: containers get no outbound network (install the slirp4netns package)")
	}
	portDriver, err := builtin.NewParentDriver(os.Stderr, dir)
	if err != nil {
		return err
	}
	return parent.Parent(parent.Opt{
		PipeFDEnvKey:             pipeFDEnvKey,
		ChildUseActivationEnvKey: childUseActivationEnvKey,
		StateDir:                 dir,
		StateDirEnvKey:           stateDirEnvKey,
		NetworkDriver:            netDriver,
		PortDriver:               portDriver,
		DetachNetNS:              true,
		Propagation:              "rslave",
		SubidSource:              subidSource(),
	})
}

// envSingleMap is set in a holder that maps the user's own id only.
const envSingleMap = "_NOOK_SINGLE_MAP"

// subidSource is /etc/subuid and /etc/subgid, except for a single mapping
// (see startHolder).
func subidSource() parent.SubidSource {
	if os.Getenv(envSingleMap) != "" {
		return parent.SubidSourceDynamic
	}
	return parent.SubidSourceStatic
}

func childMain() error {
	logrus.SetOutput(os.Stderr)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var netDriver network.ChildDriver
	if _, err := exec.LookPath("slirp4netns"); err == nil {
		netDriver = slirp4netns.NewChildDriver()
	}
	return child.Child(child.Opt{
		PipeFDEnvKey:              pipeFDEnvKey,
		RunActivationHelperEnvKey: runActivationHelperEnvKey,
		ChildUseActivationEnvKey:  childUseActivationEnvKey,
		StateDirEnvKey:            stateDirEnvKey,
		TargetCmd:                 []string{self, pauseArg},
		NetworkDriver:             netDriver,
		PortDriver:                builtin.NewChildDriver(os.Stderr),
		DetachNetNS:               true,
		Propagation:               "rslave",
	})
}

// pauseMain is the holder's resident process inside the namespaces. It
// mounts a tmpfs for volatile storage state (so that mount counts die with
// the mounts), reports ready, and waits until idle or told to stop.
func pauseMain() error {
	dir := os.Getenv(stateDirEnvKey)
	if dir == "" {
		dir = HolderDir()
	}
	vol := filepath.Join(RuntimeDir(), "volatile")
	if err := os.MkdirAll(vol, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", vol, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return fmt.Errorf("mounting a tmpfs on %s: %w", vol, err)
	}
	tmp := filepath.Join(dir, ".ready.tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, readyFile)); err != nil {
		return err
	}
	idle := defaultIdle
	if v := os.Getenv("NOOK_HOLDER_IDLE"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			idle = d
		} else if v == "0" {
			idle = 0
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer stop()
	// Look often enough that a short idle time (tests, NOOK_HOLDER_IDLE=2s)
	// is honoured within about a quarter of itself, and at most every 15s.
	every := 15 * time.Second
	if idle > 0 && idle/4 < every {
		every = max(idle/4, 50*time.Millisecond)
	}
	check := time.NewTicker(every)
	defer check.Stop()
	lastBusy := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-check.C:
			if idle <= 0 {
				continue
			}
			if othersInNamespace() {
				lastBusy = time.Now()
			} else if time.Since(lastBusy) >= idle {
				return nil
			}
		}
	}
}

// othersInNamespace reports whether any process other than the holder's own
// lives in this user namespace (a joined nook, a container, a monitor).
func othersInNamespace() bool {
	self, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		return true
	}
	mine := map[int]bool{os.Getpid(): true, os.Getppid(): true}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || mine[pid] {
			continue
		}
		ns, err := os.Readlink("/proc/" + e.Name() + "/ns/user")
		if err != nil || ns != self {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if strings.TrimSpace(string(comm)) == "slirp4netns" {
			continue
		}
		return true
	}
	return false
}

// unshareMain is the "unshare -n CMD..." helper rootlesskit runs (as
// argv[0] "unshare") to create the detached network namespace.
func unshareMain(args []string) error {
	newNet := false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-n", "--net":
			newNet = true
		default:
			return fmt.Errorf("unshare: unknown flag %s", args[0])
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return errors.New("unshare: no command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if newNet {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
	}
	return cmd.Run()
}

// mapHelperMain stands in for newuidmap/newgidmap when the setuid helpers
// are missing or the user has no subordinate ids: it maps the user's own id
// only, which the kernel allows without privilege.
func mapHelperMain(name string, args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("%s: usage: %s PID ...", name, name)
	}
	pid := args[0]
	if name == "newgidmap" {
		if err := os.WriteFile("/proc/"+pid+"/setgroups", []byte("deny"), 0); err != nil {
			return fmt.Errorf("%s: writing setgroups: %w", name, err)
		}
		return os.WriteFile("/proc/"+pid+"/gid_map", fmt.Appendf(nil, "0 %d 1\n", os.Getgid()), 0)
	}
	return os.WriteFile("/proc/"+pid+"/uid_map", fmt.Appendf(nil, "0 %d 1\n", os.Getuid()), 0)
}

// PortManager is the holder's port publisher (rootlesskit's builtin port
// driver), for runner and compose.
type PortManager = port.Manager
