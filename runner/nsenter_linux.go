package runner

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/storage/pkg/reexec"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/nook-containers/nook/imagecfg"
	"github.com/nook-containers/nook/runner/nsenter"
)

// `nook exec` runs a command in a running container. The namespaces are
// entered by the C constructor of package nsenter, before the Go runtime
// starts (see nsenter/nsenter.c for the process tree); the process that
// comes out of it, already in the container's pid, mount, uts, ipc and
// network namespaces, is nook again with this argv[0]. It reads its
// configuration from fdConfig, resolves the user inside the container,
// takes the container's capabilities, seccomp filter and no_new_privs,
// and execs the command. As for the init, a failure before the exec is a
// JSON initError on fdStatus and becomes the exit code.
const execArg0 = "nook-exec"

// Descriptors of the exec'd process (fdConfig, fdStatus and fdConsole as
// the init's; the sync descriptor and namespaces belong to the
// constructor).
const (
	fdExecSync = 6
	fdExecNS   = 7
)

func init() {
	reexec.Register(execArg0, execMain)
	if len(os.Args) > 0 && os.Args[0] == execArg0 {
		runtime.LockOSThread()
	}
}

// ExecOptions are docker exec's flags.
type ExecOptions struct {
	Cmd         []string
	Interactive bool     // -i: attach stdin
	Tty         bool     // -t: a pseudo-terminal
	Detach      bool     // -d: start it and return
	User        string   // -u user[:group]; empty: the container's user
	WorkingDir  string   // -w; empty: the container's working directory
	Env         []string // KEY=VALUE, env files first, then -e
	Privileged  bool     // every capability
}

// execConfig is what the exec'd process receives on fdConfig.
type execConfig struct {
	Process *specs.Process `json:"process"`
	// User is -u, resolved inside the container (its /etc/passwd, as the
	// container sees it); empty: Process.User as the container runs.
	User     string              `json:"user,omitempty"`
	GroupAdd []string            `json:"groupAdd,omitempty"`
	Seccomp  *specs.LinuxSeccomp `json:"seccomp,omitempty"`
}

// Exec runs a command in a running container and, unless o.Detach, waits
// for it: its streams are copied, signals from sigs forwarded, and its exit
// code returned (126 and 127 as docker for a command that cannot be
// invoked or is not found; 125 when nook fails).
func (r *Runtime) Exec(ctx context.Context, c *Container, o *ExecOptions, stdio IO, sigs <-chan os.Signal) (int, error) {
	if len(o.Cmd) == 0 {
		return codeFailed, userErr("exec needs a command to run")
	}
	if !c.State.Running() || !alive(c.State.Pid, c.State.PidStart) {
		return codeFailed, userErr("container %s is not running", c.Name)
	}
	spec, err := c.Spec()
	if err != nil {
		return codeFailed, err
	}
	ec, err := r.execConfig(c, spec, o)
	if err != nil {
		return codeFailed, err
	}
	nsFiles, nsArg, err := containerNamespaces(c)
	if err != nil {
		return codeFailed, err
	}
	defer func() {
		for _, f := range nsFiles {
			f.Close()
		}
	}()
	exe, err := sealedExe(r.ScratchDir)
	if err != nil {
		return codeFailed, err
	}
	// Descriptors this process inherited without close-on-exec must not
	// reach the container (CVE-2024-21626).
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)

	var closers []io.Closer // ours, closed on return
	var childEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
		for _, cl := range closers {
			cl.Close()
		}
	}()
	pipe := func() (*os.File, *os.File, error) {
		rd, wr, err := os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("creating a pipe: %w", err)
		}
		return rd, wr, nil
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return codeFailed, err
	}
	childEnds = append(childEnds, devnull)
	cfgR, cfgW, err := pipe()
	if err != nil {
		return codeFailed, err
	}
	childEnds, closers = append(childEnds, cfgR), append(closers, cfgW)
	stR, stW, err := pipe()
	if err != nil {
		return codeFailed, err
	}
	childEnds, closers = append(childEnds, stW), append(closers, stR)
	var conParent, conChild *os.File
	if o.Tty {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return codeFailed, fmt.Errorf("creating the console socket: %w", err)
		}
		conParent, conChild = os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console")
		childEnds, closers = append(childEnds, conChild), append(closers, conParent)
	}
	sfds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return codeFailed, fmt.Errorf("creating the sync socket: %w", err)
	}
	syncParent, syncChild := os.NewFile(uintptr(sfds[0]), "sync"), os.NewFile(uintptr(sfds[1]), "sync")
	childEnds, closers = append(childEnds, syncChild), append(closers, syncParent)

	// The command's streams: pipes to this process (or the pty, which the
	// exec'd process makes in the container's devpts).
	stdin, stdout, stderr := devnull, devnull, devnull
	var stdinW, outR, errR *os.File
	if !o.Tty && !o.Detach {
		if o.Interactive && stdio.Stdin != nil {
			if stdin, stdinW, err = pipe(); err != nil {
				return codeFailed, err
			}
			childEnds, closers = append(childEnds, stdin), append(closers, stdinW)
		}
		if outR, stdout, err = pipe(); err != nil {
			return codeFailed, err
		}
		childEnds, closers = append(childEnds, stdout), append(closers, outR)
		if errR, stderr, err = pipe(); err != nil {
			return codeFailed, err
		}
		childEnds, closers = append(childEnds, stderr), append(closers, errR)
	}
	extra := []*os.File{cfgR, stW, conChild, syncChild}
	extra = append(extra, nsFiles...)
	detach := 0
	if o.Detach {
		detach = 1
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{execArg0},
		Env:         []string{fmt.Sprintf("%s=%d;%d;%s", nsenter.EnvKey, fdExecSync, detach, nsArg)},
		Stdin:       stdin,
		Stdout:      stdout,
		Stderr:      stderr,
		ExtraFiles:  extra,
		Dir:         "/",
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return codeFailed, fmt.Errorf("starting the process that enters the container: %w", err)
	}
	for _, f := range childEnds {
		f.Close()
	}
	childEnds = nil

	w, err := enterContainer(cmd, syncParent, spec)
	if err != nil {
		return codeFailed, fmt.Errorf("entering container %s: %w", c.Name, err)
	}
	waitW := func() int {
		ps, err := w.Wait()
		if err != nil {
			return codeFailed
		}
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ps.ExitCode()
	}
	fail := func(err error) (int, error) {
		_ = w.Kill()
		waitW()
		return codeFailed, err
	}

	b, err := json.Marshal(ec)
	if err != nil {
		return fail(err)
	}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := cfgW.Write(append(hdr[:], b...)); err != nil {
		return fail(execFailure(stR, fmt.Errorf("sending the configuration: %w", err)))
	}
	var master *os.File
	var restore func()
	resize := func() {}
	if o.Tty {
		master, err = receivePty(conParent)
		if err != nil {
			return fail(execFailure(stR, err))
		}
		closers = append(closers, master)
		resize = func() {
			if stdio.TermOut != nil {
				if ws, err := unix.IoctlGetWinsize(int(stdio.TermOut.Fd()), unix.TIOCGWINSZ); err == nil {
					_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
				}
			}
		}
		resize()
		if o.Interactive && stdio.TermIn != nil && !o.Detach {
			fd := int(stdio.TermIn.Fd())
			if old, err := term.MakeRaw(fd); err == nil {
				restore = func() { _ = term.Restore(fd, old) }
				defer restore()
			}
		}
		if _, err := cfgW.Write([]byte{1}); err != nil {
			return fail(execFailure(stR, err))
		}
	}
	cfgW.Close()

	// Until the exec, the command's output is nook's: copy it from now on,
	// so that a failure's message is read whole.
	var copies []chan struct{}
	copyOut := func(dst io.Writer, src *os.File) {
		done := make(chan struct{})
		copies = append(copies, done)
		go func() {
			if dst == nil {
				dst = io.Discard
			}
			_, _ = io.Copy(dst, src)
			close(done)
		}()
	}
	if !o.Detach {
		if master != nil {
			copyOut(stdio.Stdout, master)
			if o.Interactive && stdio.Stdin != nil {
				go func() { _, _ = io.Copy(master, stdio.Stdin) }()
			}
		} else {
			copyOut(stdio.Stdout, outR)
			copyOut(stdio.Stderr, errR)
			if stdinW != nil {
				go func() {
					_, _ = io.Copy(stdinW, stdio.Stdin)
					stdinW.Close()
				}()
			}
		}
	}
	status, err := io.ReadAll(stR)
	if err != nil {
		return fail(fmt.Errorf("reading the start-up status: %w", err))
	}
	if len(status) > 0 {
		var ie initError
		if err := json.Unmarshal(status, &ie); err != nil {
			return fail(fmt.Errorf("the exec'd process failed: %s", status))
		}
		waitW()
		drain(copies, time.Second)
		return ie.Code, &ie
	}
	if o.Detach {
		waitW()
		return 0, nil
	}
	done := make(chan struct{})
	if master != nil {
		sigs = withResize(sigs, resize)
	}
	go forwardExecSignals(sigs, w, done)
	code := waitW()
	close(done)
	// Output still in the pipes is the command's; a process it left
	// running in the background may hold them open: do not wait for that.
	drain(copies, 500*time.Millisecond)
	return code, nil
}

// drain waits for the output copies to end, at most grace.
func drain(copies []chan struct{}, grace time.Duration) {
	deadline := time.After(grace)
	for _, d := range copies {
		select {
		case <-d:
		case <-deadline:
			return
		}
	}
}

// forwardExecSignals passes signals on to the waiting process, which
// passes them on to the command.
func forwardExecSignals(sigs <-chan os.Signal, w *os.Process, done <-chan struct{}) {
	if sigs == nil {
		return
	}
	for {
		select {
		case <-done:
			return
		case s, ok := <-sigs:
			if !ok {
				return
			}
			sig, isSys := s.(syscall.Signal)
			if !isSys || sig == unix.SIGCHLD || sig == unix.SIGURG || sig == unix.SIGWINCH {
				continue
			}
			_ = w.Signal(sig)
		}
	}
}

// execFailure prefers the exec'd process's own report over a broken pipe.
func execFailure(status *os.File, err error) error {
	_ = status.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(status)
	var ie initError
	if len(b) > 0 && json.Unmarshal(b, &ie) == nil {
		return &ie
	}
	return err
}

// enterContainer lets the constructor go on and returns the process that
// waits for the command inside the container (a child of this process).
func enterContainer(cmd *exec.Cmd, sync *os.File, spec *specs.Spec) (*os.Process, error) {
	abort := func(err error) (*os.Process, error) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	if spec.Linux != nil && spec.Linux.CgroupsPath != "" {
		if err := (&CgroupPlan{Path: spec.Linux.CgroupsPath}).AddProcess(cmd.Process.Pid); err != nil {
			return abort(err)
		}
	}
	if _, err := sync.Write([]byte{1}); err != nil {
		return abort(fmt.Errorf("starting: %w", err))
	}
	// The constructor writes one line and exits; the waiting process
	// closed its copy at once.
	line, rerr := bufio.NewReader(sync).ReadString('\n')
	werr := cmd.Wait()
	line = strings.TrimSpace(line)
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return nil, errors.New(msg)
	}
	pidStr, ok := strings.CutPrefix(line, "pid ")
	if !ok {
		if rerr == nil {
			rerr = fmt.Errorf("unexpected message %q", line)
		}
		if werr != nil {
			rerr = fmt.Errorf("%v (%v)", rerr, werr)
		}
		return nil, fmt.Errorf("reading from the process entering the container: %w", rerr)
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("bad pid %q from the process entering the container", pidStr)
	}
	// A pidfd-backed handle: no confusion with a reused pid.
	return os.FindProcess(pid)
}

// receivePty gets the pty master from the exec'd process.
func receivePty(sock *os.File) (*os.File, error) {
	fd, err := recvTerminal(sock, "the exec'd process")
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that closing it ends a copy blocked on it.
	_ = unix.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), "pty"), nil
}

// nsOrder is the order the constructor joins namespaces in: the mount
// namespace last, since joining it changes the root.
var nsOrder = []string{"ipc", "uts", "net", "pid", "mnt"}

// containerNamespaces opens the namespaces of the container's pid 1 that
// differ from this process's (--network host shares the network one), and
// checks afterwards that the pid still is that container's.
func containerNamespaces(c *Container) ([]*os.File, string, error) {
	var files []*os.File
	var args []string
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, t := range nsOrder {
		p := fmt.Sprintf("/proc/%d/ns/%s", c.State.Pid, t)
		f, err := os.Open(p)
		if err != nil {
			closeAll()
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
				return nil, "", userErr("container %s is not running", c.Name)
			}
			return nil, "", fmt.Errorf("opening the container's %s namespace: %w", t, err)
		}
		var theirs, ours unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &theirs); err == nil && unix.Stat("/proc/self/ns/"+t, &ours) == nil &&
			theirs.Ino == ours.Ino && theirs.Dev == ours.Dev {
			f.Close()
			continue
		}
		files = append(files, f)
		args = append(args, fmt.Sprintf("%d:%s", fdExecNS+len(files)-1, t))
	}
	if !alive(c.State.Pid, c.State.PidStart) {
		closeAll()
		return nil, "", userErr("container %s is not running", c.Name)
	}
	return files, strings.Join(args, ","), nil
}

// execConfig builds the exec'd process from the container's and the
// flags, as docker does: the container's user, working directory,
// capabilities, rlimits, no_new_privs and seccomp filter; its environment
// (the image's ENV and run's -e, then exec's -e; TERM with -t; HOME from
// the user's passwd entry unless set).
func (r *Runtime) execConfig(c *Container, spec *specs.Spec, o *ExecOptions) (*execConfig, error) {
	sp := spec.Process
	if sp == nil {
		return nil, fmt.Errorf("the configuration of %s has no process", c.Name)
	}
	cwd := sp.Cwd
	if o.WorkingDir != "" {
		if !path.IsAbs(o.WorkingDir) {
			return nil, userErr("the working directory %q is invalid: it needs to be an absolute path", o.WorkingDir)
		}
		cwd = path.Clean(o.WorkingDir)
	}
	p := &specs.Process{
		Terminal:        o.Tty,
		User:            sp.User,
		Args:            o.Cmd,
		Env:             r.execEnv(c, spec, o),
		Cwd:             cwd,
		Capabilities:    sp.Capabilities,
		Rlimits:         sp.Rlimits,
		NoNewPrivileges: sp.NoNewPrivileges,
	}
	if o.Privileged {
		all := availableCaps()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	}
	ec := &execConfig{Process: p, User: o.User, GroupAdd: c.Options.GroupAdd}
	if spec.Linux != nil {
		ec.Seccomp = spec.Linux.Seccomp
	}
	return ec, nil
}

// availableCaps is every capability this process may still hold (its
// bounding set): --privileged gives the exec'd process all of them.
func availableCaps() []string {
	caps, err := capability.NewPid2(0)
	if err != nil || caps.Load() != nil {
		return AllCaps()
	}
	var out []string
	for _, name := range AllCaps() {
		if v, err := capValues([]string{name}); err == nil && len(v) == 1 && caps.Get(capability.BOUNDING, v[0]) {
			out = append(out, name)
		}
	}
	return out
}

func envHas(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

func envWithout(env []string, key string) []string {
	var out []string
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}

func (r *Runtime) execEnv(c *Container, spec *specs.Spec, o *ExecOptions) []string {
	var env []string
	homeSet := envHas(o.Env, "HOME")
	if img, err := r.Store.Lookup(c.ImageID); err == nil {
		if cfg, err := img.OCIConfig(); err == nil {
			env = Env(cfg.Config.Env, c.Options.Env, spec.Hostname, o.Tty, "")
			homeSet = homeSet || envHas(cfg.Config.Env, "HOME") || envHas(c.Options.Env, "HOME")
		}
	}
	if env == nil {
		// The image is gone (rmi -f): the container's own environment.
		env = envWithout(spec.Process.Env, "TERM")
		if o.Tty {
			env = append(env, "TERM=xterm")
		}
		homeSet = true
	}
	if !homeSet {
		env = envWithout(env, "HOME") // the exec'd user's, resolved inside
	}
	for _, kv := range o.Env {
		k, v, _ := strings.Cut(kv, "=")
		env = imagecfg.SetEnv(env, k, v)
	}
	return env
}

// execMain is the exec'd process, inside the container's namespaces.
func execMain() {
	runtime.LockOSThread()
	closeStrayFDs()
	err := execInContainer()
	ie, ok := err.(*initError)
	if !ok {
		ie = failf(codeCannot, "%v", err)
	}
	_ = json.NewEncoder(os.NewFile(fdStatus, "status")).Encode(ie)
	os.Exit(ie.Code)
}

func readExecConfig() (*execConfig, *os.File, error) {
	var ec execConfig
	f, err := readFramedJSON("exec", 16<<20, &ec)
	return &ec, f, err
}

func execInContainer() error {
	ec, cfgPipe, err := readExecConfig()
	if err != nil {
		return err
	}
	p := ec.Process
	if p == nil || len(p.Args) == 0 {
		return errors.New("incomplete exec configuration")
	}
	unix.Umask(0o022)
	// The user, as the container's /etc/passwd and /etc/group say (the
	// root is the container's since the mount namespace was joined).
	home := ""
	if ec.User != "" {
		eu, err := ResolveUser("/", ec.User, ec.GroupAdd)
		if err != nil {
			// The files are the container's, as it sees them now.
			return failf(codeCannot, "%s", strings.ReplaceAll(err.Error(), "the image's", "the container's"))
		}
		p.User = specs.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid), AdditionalGids: intsToUint32(eu.Sgids)}
		home = eu.Home
	} else if eu, err := ResolveUser("/", strconv.Itoa(int(p.User.UID)), nil); err == nil {
		home = eu.Home
	}
	if !envHas(p.Env, "HOME") {
		if home == "" {
			home = "/"
		}
		p.Env = append(p.Env, "HOME="+home)
	}
	for _, rl := range p.Rlimits {
		res, ok := rlimitNames[rl.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %s", rl.Type)
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("setting %s: %w", rl.Type, err)
		}
	}
	if p.Terminal {
		if err := execConsole(p, cfgPipe); err != nil {
			return err
		}
	} else if _, err := unix.Setsid(); err != nil && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("setsid: %w", err)
	}
	cfgPipe.Close()
	var filter *seccomp.Policy
	if ec.Seccomp != nil {
		if filter, err = bpfPolicy(ec.Seccomp); err != nil {
			return err
		}
		if !p.NoNewPrivileges {
			if err := loadSeccomp(filter, false); err != nil {
				return err
			}
		}
	}
	if err := switchUser(p); err != nil {
		return err
	}
	if err := unix.Chdir(p.Cwd); err != nil {
		return failf(codeCannot, "changing to the working directory %s: %v", p.Cwd, err)
	}
	if wd, err := unix.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return failf(codeCannot, "the working directory %s is outside the container", p.Cwd)
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs: %w", err)
		}
	}
	exe, err := lookExec(p.Args[0], p.Env)
	if err != nil {
		return err
	}
	if filter != nil && p.NoNewPrivileges {
		if err := loadSeccomp(filter, true); err != nil {
			return err
		}
	}
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	err = unix.Exec(exe, p.Args, p.Env)
	return execError(p.Args[0], err)
}

// execConsole makes a pty in the container's devpts, hands the master to
// nook exec, waits until it has set the window size, and makes the slave
// the controlling terminal and stdio.
func execConsole(p *specs.Process, cfgPipe *os.File) error {
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
	_ = unix.Fchown(slave, int(p.User.UID), int(p.User.GID))
	return takeTerminal(master, slave, cfgPipe)
}
