package runner

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/storage/pkg/reexec"
	"golang.org/x/sys/unix"
)

// The container's init is nook itself, re-executed (from a sealed copy of
// its binary, see seal_linux.go) with this argv[0] in the container's new
// namespaces. It reads its configuration from fdConfig, builds the root
// file system, drops privileges and execs the command. A failure before
// the exec is written to fdStatus (close-on-exec: a clean EOF there means
// the exec succeeded) and becomes the exit code.
const initArg0 = "nook-container-init"

const (
	fdConfig  = 3
	fdStatus  = 4
	fdConsole = 5
	fdNetNS   = 6
)

func init() {
	reexec.Register(initArg0, initMain)
	if len(os.Args) > 0 && os.Args[0] == initArg0 {
		// Package initialisation runs on the main thread: stay there, so
		// that what this thread joins is what /proc/PID/ns/* shows.
		runtime.LockOSThread()
	}
}

// initError is what the init reports when it cannot start the command.
type initError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *initError) Error() string { return e.Message }

// exit codes as docker's
const (
	codeFailed   = 125
	codeCannot   = 126
	codeNotFound = 127
)

func failf(code int, format string, a ...any) *initError {
	return &initError{Code: code, Message: fmt.Sprintf(format, a...)}
}

func initMain() {
	// Capabilities, no_new_privs and the exec itself are per thread: keep
	// this goroutine on one.
	runtime.LockOSThread()
	closeStrayFDs()
	err := containerInit()
	ie, ok := err.(*initError)
	if !ok {
		ie = failf(codeFailed, "%v", err)
	}
	status := os.NewFile(fdStatus, "status")
	_ = json.NewEncoder(status).Encode(ie)
	os.Exit(ie.Code)
}

// closeStrayFDs closes every descriptor the init did not ask for: nothing
// from the invoking process may reach the container (CVE-2024-21626).
func closeStrayFDs() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		_ = unix.CloseRange(fdNetNS+1, ^uint(0), 0)
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= fdNetNS {
			continue
		}
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(link, "anon_inode:") {
			continue // the Go runtime's poller
		}
		_ = unix.Close(fd)
	}
}

func readConfig() (*initConfig, *os.File, error) {
	var ic initConfig
	f, err := readFramedJSON("container", 64<<20, &ic)
	return &ic, f, err
}

// readFramedJSON reads the configuration the parent writes on the config
// pipe: a little-endian uint32 length, then that much JSON.
func readFramedJSON(what string, limit uint32, v any) (*os.File, error) {
	f := os.NewFile(fdConfig, "config")
	var n uint32
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("reading the %s configuration: %w", what, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%s configuration too large", what)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("reading the %s configuration: %w", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decoding the %s configuration: %w", what, err)
	}
	return f, nil
}

func containerInit() error {
	ic, cfgPipe, err := readConfig()
	if err != nil {
		return err
	}
	s := ic.Spec
	if s == nil || s.Process == nil || s.Root == nil {
		return errors.New("incomplete container configuration")
	}
	unix.Umask(0o022)
	if ic.JoinNetNS {
		// This thread (the one that execs) enters the namespace made
		// ahead; sysfs and lo below are then that namespace's.
		if err := unix.Setns(fdNetNS, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("joining the container's network namespace: %w", err)
		}
		unix.Close(fdNetNS)
	}
	if !ic.HostNetwork {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	if err := setupRootfs(ic); err != nil {
		return err
	}
	if err := setupConsole(ic, cfgPipe); err != nil {
		return err
	}
	cfgPipe.Close()
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("setting the hostname: %w", err)
		}
	}
	if s.Domainname != "" {
		if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
			return fmt.Errorf("setting the domain name: %w", err)
		}
	}
	for _, rl := range s.Process.Rlimits {
		res, ok := rlimitNames[rl.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %s", rl.Type)
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("setting %s: %w", rl.Type, err)
		}
	}
	cwd := s.Process.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := makeWorkdir(cwd); err != nil {
		return err
	}
	// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it
	// while the init still has it; with it, as the very last step.
	var filter *seccomp.Policy
	if s.Linux != nil && s.Linux.Seccomp != nil {
		if filter, err = bpfPolicy(s.Linux.Seccomp); err != nil {
			return err
		}
		if !s.Process.NoNewPrivileges {
			if err := loadSeccomp(filter, false); err != nil {
				return err
			}
		}
	}
	if err := switchUser(s.Process); err != nil {
		return err
	}
	if err := unix.Chdir(cwd); err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return failf(codeFailed, "the working directory %s is not a directory", cwd)
		}
		return failf(codeCannot, "changing to the working directory %s: %v", cwd, err)
	}
	// A directory reached through a descriptor that leads out of the root
	// shows as "(unreachable)": never start a command there.
	if wd, err := unix.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return failf(codeFailed, "the working directory %s is outside the container", cwd)
	}
	if s.Process.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs: %w", err)
		}
	}
	path, err := lookExec(s.Process.Args[0], s.Process.Env)
	if err != nil {
		return err
	}
	if filter != nil && s.Process.NoNewPrivileges {
		if err := loadSeccomp(filter, true); err != nil {
			return err
		}
	}
	// Nothing but stdio crosses the exec.
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if s.Annotations[annotationInit] == "true" {
		return reap(path, s.Process)
	}
	err = unix.Exec(path, s.Process.Args, s.Process.Env)
	return execError(s.Process.Args[0], err)
}

func execError(name string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return failf(codeNotFound, "exec: %q: no such file or directory", name)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR):
		return failf(codeCannot, "exec: %q: %v", name, err)
	}
	return failf(codeCannot, "exec: %q: %v", name, err)
}

// lookExec finds the command in the container's PATH, as docker does.
func lookExec(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		fi, err := os.Stat(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", failf(codeNotFound, "exec: %q: no such file or directory", name)
			}
			return "", failf(codeCannot, "exec: %q: %v", name, err)
		}
		if fi.IsDir() {
			return "", failf(codeCannot, "exec: %q: is a directory", name)
		}
		return name, nil
	}
	pathEnv := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", failf(codeNotFound, "exec: %q: executable file not found in $PATH", name)
}

func loadSeccomp(p *seccomp.Policy, nnp bool) error {
	err := seccomp.LoadFilter(seccomp.Filter{NoNewPrivs: nnp, Flag: seccomp.FilterFlagTSync, Policy: *p})
	if err != nil {
		return fmt.Errorf("loading the seccomp profile: %w", err)
	}
	return nil
}

// makeWorkdir creates the working directory as docker does when it is
// missing, and refuses one that is not a directory. It runs after the
// pivot, so a path through /proc/self/fd resolves in the container.
func makeWorkdir(cwd string) error {
	fi, err := os.Stat(cwd)
	if err == nil {
		if !fi.IsDir() {
			return failf(codeFailed, "the working directory %s is not a directory", cwd)
		}
		return nil
	}
	if errors.Is(err, unix.ENOTDIR) {
		return failf(codeFailed, "the working directory %s is not a directory", cwd)
	}
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EEXIST) {
			return failf(codeFailed, "the working directory %s is not a directory", cwd)
		}
		return failf(codeFailed, "creating the working directory %s: %v", cwd, err)
	}
	return nil
}

// switchUser drops to the container's user and capability sets.
func switchUser(p *specs.Process) error {
	caps, err := capability.NewPid2(0)
	if err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	var bounding, effective, permitted, inheritable []capability.Cap
	if p.Capabilities != nil {
		if bounding, err = capValues(p.Capabilities.Bounding); err != nil {
			return err
		}
		if effective, err = capValues(p.Capabilities.Effective); err != nil {
			return err
		}
		if permitted, err = capValues(p.Capabilities.Permitted); err != nil {
			return err
		}
		if inheritable, err = capValues(p.Capabilities.Inheritable); err != nil {
			return err
		}
	}
	caps.Clear(capability.BOUNDING)
	caps.Set(capability.BOUNDING, bounding...)
	if err := caps.Apply(capability.BOUNDING); err != nil {
		return fmt.Errorf("dropping bounding capabilities: %w", err)
	}
	if len(p.User.AdditionalGids) > 0 || setgroupsAllowed() {
		gids := make([]int, 0, len(p.User.AdditionalGids))
		for _, g := range p.User.AdditionalGids {
			gids = append(gids, int(g))
		}
		if err := unix.Setgroups(gids); err != nil {
			return failf(codeFailed, "setting supplementary groups %v: %v (are they mapped in the user namespace? see docs/rootless.md)", gids, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keeping capabilities: %w", err)
	}
	if err := unix.Setresgid(int(p.User.GID), int(p.User.GID), int(p.User.GID)); err != nil {
		return failf(codeFailed, "switching to group %d: %v (is it mapped in the user namespace? see docs/rootless.md)", p.User.GID, err)
	}
	if err := unix.Setresuid(int(p.User.UID), int(p.User.UID), int(p.User.UID)); err != nil {
		return failf(codeFailed, "switching to user %d: %v (is it mapped in the user namespace? see docs/rootless.md)", p.User.UID, err)
	}
	_ = unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0)
	caps.Clear(capability.CAPS | capability.AMBIENT)
	caps.Set(capability.EFFECTIVE, effective...)
	caps.Set(capability.PERMITTED, permitted...)
	caps.Set(capability.INHERITABLE, inheritable...)
	if err := caps.Apply(capability.CAPS); err != nil {
		return fmt.Errorf("setting capabilities: %w", err)
	}
	_ = capability.ResetAmbient()
	return nil
}

func setgroupsAllowed() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err != nil || strings.TrimSpace(string(b)) != "deny"
}

var rlimitNames = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// setupConsole makes a pty in the container's devpts, hands the master to
// the invoking process over fdConsole, waits until it has set the window
// size, and makes the slave the controlling terminal and stdio.
func setupConsole(ic *initConfig, cfgPipe *os.File) error {
	if !ic.Console {
		return nil
	}
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening a pty: %w", err)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlocking the pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("naming the pty: %w", err)
	}
	slavePath := "/dev/pts/" + strconv.Itoa(int(n))
	slave, err := unix.Open(slavePath, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", slavePath, err)
	}
	_ = unix.Fchown(slave, int(ic.Spec.Process.User.UID), int(ic.Spec.Process.User.GID))
	// /dev/console is the pty, as runc does.
	if f, err := os.OpenFile("/dev/console", os.O_CREATE|os.O_RDWR, 0o600); err == nil {
		f.Close()
		_ = unix.Mount(slavePath, "/dev/console", "", unix.MS_BIND, "")
	}
	return takeTerminal(master, slave, cfgPipe)
}

// reap runs the command as a child and stays pid 1: it forwards signals
// to it, reaps every zombie and exits with the command's status (--init).
func reap(path string, p *specs.Process) error {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	attr := &syscall.ProcAttr{Env: p.Env, Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setpgid: true}}
	if p.Terminal {
		attr.Sys.Foreground = true
		attr.Sys.Ctty = 0
	}
	pid, err := syscall.ForkExec(path, p.Args, attr)
	if err != nil {
		return execError(p.Args[0], err)
	}
	// The command runs: report success to the invoker.
	unix.Close(fdStatus)
	go func() {
		for s := range sigs {
			if s == unix.SIGCHLD || s == unix.SIGURG {
				continue
			}
			_ = unix.Kill(pid, s.(syscall.Signal))
		}
	}()
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			os.Exit(codeFailed)
		}
		if wpid == pid {
			if ws.Signaled() {
				os.Exit(128 + int(ws.Signal()))
			}
			os.Exit(ws.ExitStatus())
		}
	}
}

// setupRootfs builds the container's file system view and pivots into it.
func setupRootfs(ic *initConfig) error {
	s := ic.Spec
	rootfs := s.Root.Path
	// Nothing done here may propagate back to the holder's (or host's)
	// mount namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the root file system %s: %w", rootfs, err)
	}
	for _, m := range s.Mounts {
		if err := mountOne(rootfs, m, ic); err != nil {
			return err
		}
		if m.Destination == "/dev" {
			if err := setupDev(rootfs, s, ic); err != nil {
				return err
			}
		}
	}
	if err := pivotRoot(rootfs); err != nil {
		return err
	}
	if s.Linux != nil {
		for _, p := range s.Linux.ReadonlyPaths {
			if err := readonlyPath(p); err != nil {
				return err
			}
		}
		for _, p := range s.Linux.MaskedPaths {
			if err := maskPath(p); err != nil {
				return err
			}
		}
	}
	if s.Root.Readonly {
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
		flags |= lockedFlags("/")
		if err := unix.Mount("", "/", "", flags, ""); err != nil {
			return fmt.Errorf("making the root file system read-only: %w", err)
		}
	}
	return nil
}

func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root under the new one; detach
	// it, so that nothing of the host stays reachable.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", rootfs, err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making the old root a slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}

var mountOptionFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS},
	"noatime": {false, unix.MS_NOATIME}, "atime": {true, unix.MS_NOATIME},
	"nodiratime": {false, unix.MS_NODIRATIME}, "diratime": {true, unix.MS_NODIRATIME},
	"relatime": {false, unix.MS_RELATIME}, "norelatime": {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
	"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
	"remount": {false, unix.MS_REMOUNT}, "defaults": {false, 0},
}

var propagationFlags = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

func parseMountOptions(opts []string) (flags uintptr, prop []uintptr, data string) {
	var d []string
	for _, o := range opts {
		if f, ok := mountOptionFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		if p, ok := propagationFlags[o]; ok {
			prop = append(prop, p)
			continue
		}
		d = append(d, o)
	}
	return flags, prop, strings.Join(d, ",")
}

// lockedFlags are the flags of the mount at path that a user namespace
// may not clear on a remount.
func lockedFlags(path string) uintptr {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0
	}
	var f uintptr
	for st2, ms := range map[int64]uintptr{
		unix.ST_RDONLY: unix.MS_RDONLY, unix.ST_NOSUID: unix.MS_NOSUID, unix.ST_NODEV: unix.MS_NODEV,
		unix.ST_NOEXEC: unix.MS_NOEXEC, unix.ST_NOATIME: unix.MS_NOATIME, unix.ST_NODIRATIME: unix.MS_NODIRATIME,
		unix.ST_RELATIME: unix.MS_RELATIME,
	} {
		if st.Flags&st2 != 0 {
			f |= ms
		}
	}
	return f
}

// mountpoint resolves dest inside rootfs (symlinks stay inside) and
// creates it: a directory, or an empty file when the source is one.
func mountpoint(rootfs, dest string, file bool) (string, error) {
	p, err := securejoin.SecureJoin(rootfs, dest)
	if err != nil {
		return "", fmt.Errorf("resolving %s in the container: %w", dest, err)
	}
	if fi, err := os.Lstat(p); err == nil {
		if file && fi.IsDir() || !file && !fi.IsDir() {
			return "", failf(codeFailed, "cannot mount a %s over the %s %s in the container", kind(file), kind(!file), dest)
		}
		return p, nil
	}
	if file {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("creating the mount point %s: %w", dest, err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return "", fmt.Errorf("creating the mount point %s: %w", dest, err)
		}
		f.Close()
		return p, nil
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", fmt.Errorf("creating the mount point %s: %w", dest, err)
	}
	return p, nil
}

func kind(file bool) string {
	if file {
		return "file"
	}
	return "directory"
}

func mountOne(rootfs string, m specs.Mount, ic *initConfig) error {
	flags, prop, data := parseMountOptions(m.Options)
	switch m.Type {
	case "bind":
		fi, err := os.Stat(m.Source)
		if err != nil {
			return failf(codeFailed, "bind source %s: %v", m.Source, err)
		}
		dest, err := mountpoint(rootfs, m.Destination, !fi.IsDir())
		if err != nil {
			return err
		}
		if err := unix.Mount(m.Source, dest, "", flags&(unix.MS_BIND|unix.MS_REC)|unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s at %s: %w", m.Source, m.Destination, err)
		}
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			rf := unix.MS_BIND | unix.MS_REMOUNT | rest | lockedFlags(dest)
			if err := unix.Mount("", dest, "", rf, ""); err != nil {
				return fmt.Errorf("remounting %s with %v: %w", m.Destination, m.Options, err)
			}
		}
		for _, p := range prop {
			if err := unix.Mount("", dest, "", p, ""); err != nil {
				return fmt.Errorf("setting propagation of %s: %w", m.Destination, err)
			}
		}
		return nil
	case "sysfs":
		dest, err := mountpoint(rootfs, m.Destination, false)
		if err != nil {
			return err
		}
		err = unix.Mount(m.Source, dest, "sysfs", flags, data)
		if err != nil && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)) {
			// A user namespace can mount sysfs only for a network
			// namespace it owns: with the host's network, bind the
			// host's /sys read-only instead (as rootless runc does).
			if err = unix.Mount("/sys", dest, "", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = unix.Mount("", dest, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|lockedFlags(dest), "")
			}
		}
		if err != nil {
			return fmt.Errorf("mounting /sys: %w", err)
		}
		return nil
	case "devpts":
		dest, err := mountpoint(rootfs, m.Destination, false)
		if err != nil {
			return err
		}
		err = unix.Mount(m.Source, dest, "devpts", flags, data)
		if err != nil && errors.Is(err, unix.EINVAL) {
			// gid=5 is not mapped (a single-id user namespace).
			var d []string
			for _, o := range strings.Split(data, ",") {
				if !strings.HasPrefix(o, "gid=") {
					d = append(d, o)
				}
			}
			err = unix.Mount(m.Source, dest, "devpts", flags, strings.Join(d, ","))
		}
		if err != nil {
			return fmt.Errorf("mounting %s: %w", m.Destination, err)
		}
		return nil
	case "cgroup", "cgroup2":
		return nil // not set up on this host; see docs/running.md
	default:
		dest, err := mountpoint(rootfs, m.Destination, false)
		if err != nil {
			return err
		}
		if err := unix.Mount(m.Source, dest, m.Type, flags, data); err != nil {
			return fmt.Errorf("mounting %s (%s) at %s: %w", m.Source, m.Type, m.Destination, err)
		}
		for _, p := range prop {
			if err := unix.Mount("", dest, "", p, ""); err != nil {
				return fmt.Errorf("setting propagation of %s: %w", m.Destination, err)
			}
		}
		return nil
	}
}

// setupDev fills the container's /dev tmpfs: device nodes bound from the
// host (a user namespace cannot mknod) and the usual links.
func setupDev(rootfs string, s *specs.Spec, ic *initConfig) error {
	dev := filepath.Join(rootfs, "dev")
	if p, err := securejoin.SecureJoin(rootfs, "/dev"); err == nil {
		dev = p
	}
	if s.Linux != nil {
		for _, d := range s.Linux.Devices {
			name := strings.TrimPrefix(d.Path, "/dev/")
			target := filepath.Join(dev, name)
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o666)
			if err != nil {
				return fmt.Errorf("creating %s: %w", d.Path, err)
			}
			f.Close()
			if err := unix.Mount(d.Path, target, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("binding device %s: %w", d.Path, err)
			}
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}, {"/proc/kcore", "core"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("linking /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("binding %s read-only: %w", p, err)
	}
	flags := uintptr(unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC) | lockedFlags(p)
	if err := unix.Mount("", p, "", flags, ""); err != nil {
		return fmt.Errorf("making %s read-only: %w", p, err)
	}
	return nil
}

func maskPath(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return nil // nothing to hide
	}
	if fi.IsDir() {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0")
	} else {
		err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("masking %s: %w", p, err)
	}
	return nil
}

// loopbackUp brings up lo in the container's new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	return nil
}

// takeTerminal hands the pty's master to the parent over the console
// socket, waits for the parent's go, and makes the slave this process's
// controlling terminal and standard streams.
func takeTerminal(master, slave int, cfgPipe io.Reader) error {
	if err := unix.Sendmsg(fdConsole, []byte("pty"), unix.UnixRights(master), nil, 0); err != nil {
		return fmt.Errorf("handing over the pty: %w", err)
	}
	unix.Close(master)
	unix.Close(fdConsole)
	var go1 [1]byte
	if _, err := io.ReadFull(cfgPipe, go1[:]); err != nil {
		return fmt.Errorf("waiting for the terminal: %w", err)
	}
	if _, err := unix.Setsid(); err != nil && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.IoctlSetInt(slave, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("taking the terminal: %w", err)
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return fmt.Errorf("dup: %w", err)
		}
	}
	if slave > 2 {
		unix.Close(slave)
	}
	return nil
}
