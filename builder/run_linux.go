package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/capability"
	"go.podman.io/storage/pkg/reexec"
	"golang.org/x/sys/unix"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/userns"
)

// The built-in process runner re-executes nook as the init of new mount,
// pid, ipc and uts namespaces (and a network namespace for "none"),
// inside the user namespace nook already joined. The child mounts /proc,
// /dev and /sys in the layer's rootfs, pivots into it, drops to the
// step's user and execs the command. When the command exits, the kernel
// ends every process of the pid namespace and drops every mount of the
// mount namespace: a failed or killed step leaves nothing running or
// mounted.
const runInitName = "nook-build-run-init"

func init() {
	reexec.Register(runInitName, runInit)
}

// DefaultRunner is the built-in process runner.
func DefaultRunner() ProcessRunner { return nsRunner{} }

type nsRunner struct{}

// childConfig is what the child reads from its config pipe.
type childConfig struct {
	Process
	ResolvConf string // files bind-mounted at /etc/resolv.conf and /etc/hosts
	Hosts      string
	JoinNetNS  bool // setns into the netns passed as fd 5
}

func (nsRunner) RunProcess(ctx context.Context, p *Process) error {
	tmp, err := os.MkdirTemp("", "nook-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg := childConfig{Process: *p}
	cfg.Stdout, cfg.Stderr = nil, nil
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS)
	var netns *os.File
	resolv := hostResolvConf()
	switch p.Network {
	case "none":
		flags |= unix.CLONE_NEWNET
		resolv = ""
	case "host":
	default:
		// Rootless: the holder's network namespace, whose traffic
		// goes out through slirp4netns (DNS at 10.0.2.3). As root, the
		// host's network, as docker's default build network reaches.
		if userns.Rootless() {
			f, err := os.Open(userns.NetNSPath())
			if err != nil {
				return fmt.Errorf("opening the user's network namespace (is the holder running?): %w", err)
			}
			defer f.Close()
			netns = f
			cfg.JoinNetNS = true
			resolv = "nameserver 10.0.2.3\n"
		}
	}
	cfg.ResolvConf = filepath.Join(tmp, "resolv.conf")
	cfg.Hosts = filepath.Join(tmp, "hosts")
	host := p.Hostname
	if host == "" {
		host = "buildkitsandbox"
	}
	if err := os.WriteFile(cfg.ResolvConf, []byte(resolv), 0o644); err != nil {
		return err
	}
	hosts := "127.0.0.1\tlocalhost " + host + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if err := os.WriteFile(cfg.Hosts, []byte(hosts), 0o644); err != nil {
		return err
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return err
	}
	cmd := reexec.Command(runInitName)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = io.Discard
	}
	if cmd.Stderr == nil {
		cmd.Stderr = cmd.Stdout
	}
	cmd.ExtraFiles = []*os.File{cfgR, errW} // fds 3, 4
	if netns != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, netns) // fd 5
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		cfgR.Close()
		cfgW.Close()
		errR.Close()
		errW.Close()
		return fmt.Errorf("starting the build process: %w", err)
	}
	cfgR.Close()
	errW.Close()
	go func() {
		_ = json.NewEncoder(cfgW).Encode(&cfg)
		cfgW.Close()
	}()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
		case <-done:
		}
	}()
	setupErr, _ := io.ReadAll(io.LimitReader(errR, 64<<10))
	errR.Close()
	werr := cmd.Wait()
	close(done)
	if len(setupErr) > 0 {
		return fmt.Errorf("setting up the build process: %s", strings.TrimSpace(string(setupErr)))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return &ExitError{Code: code}
	}
	return werr
}

func hostResolvConf() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return ""
	}
	return string(b)
}

// runInit is the child: it sets up the rootfs and execs the command.
// Setup errors go to fd 4 and end it with status 1.
func runInit() {
	runtime.LockOSThread()
	errPipe := os.NewFile(4, "errors")
	fail := func(format string, a ...any) {
		fmt.Fprintf(errPipe, format, a...)
		os.Exit(1)
	}
	var cfg childConfig
	if err := json.NewDecoder(os.NewFile(3, "config")).Decode(&cfg); err != nil {
		fail("reading the configuration: %v", err)
	}
	if cfg.JoinNetNS {
		if err := unix.Setns(5, unix.CLONE_NEWNET); err != nil {
			fail("joining the network namespace: %v", err)
		}
		unix.Close(5)
	}
	if cfg.Network == "none" {
		loopbackUp()
	}
	if err := setupRootfs(&cfg); err != nil {
		fail("%v", err)
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil && cfg.Hostname != "" {
		fail("setting the hostname: %v", err)
	}
	if err := os.Chdir(cfg.Cwd); err != nil {
		fail("entering the working directory %s: %v", cfg.Cwd, err)
	}
	// docker's default seccomp profile, as docker's builds apply it; loaded
	// while the step still has CAP_SYS_ADMIN, before the caps are dropped.
	if err := runner.LoadDefaultSeccomp(runner.DefaultCaps, !userns.Rootless()); err != nil {
		fail("%v", err)
	}
	if err := dropCaps(); err != nil {
		fail("dropping capabilities: %v", err)
	}
	groups := cfg.Groups
	if groups == nil {
		groups = []int{}
	}
	if err := syscall.Setgroups(groups); err != nil {
		fail("setting supplementary groups: %v", err)
	}
	if err := syscall.Setgid(cfg.GID); err != nil {
		fail("setting gid %d: %v (is it in your /etc/subgid range?)", cfg.GID, err)
	}
	if err := syscall.Setuid(cfg.UID); err != nil {
		fail("setting uid %d: %v (is it in your /etc/subuid range?)", cfg.UID, err)
	}
	if len(cfg.Args) == 0 {
		fail("no command to run")
	}
	argv0, err := lookPath(cfg.Args[0], cfg.Env)
	if err != nil {
		// As a shell would: say so on stderr, exit 127.
		fmt.Fprintf(os.Stderr, "%s: %v\n", cfg.Args[0], err)
		errPipe.Close()
		os.Exit(127)
	}
	errPipe.Close()
	// Close-on-exec on the error pipe is set by Go; exec replaces us.
	err = syscall.Exec(argv0, cfg.Args, cfg.Env)
	fmt.Fprintf(os.Stderr, "%s: %v\n", cfg.Args[0], err)
	if errors.Is(err, syscall.ENOENT) {
		os.Exit(127)
	}
	os.Exit(126)
}

func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("command not found")
}

func loopbackUp() {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return
	}
	if unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr) != nil {
		return
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	_ = unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// lockedFlags are the mount flags a user namespace may not clear on a
// remount of a mount it inherited.
func lockedFlags(p string) uintptr {
	var st unix.Statfs_t
	if unix.Statfs(p, &st) != nil {
		return 0
	}
	var f uintptr
	for _, m := range [][2]int64{{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME}, {unix.ST_RDONLY, unix.MS_RDONLY}} {
		if st.Flags&m[0] != 0 {
			f |= uintptr(m[1])
		}
	}
	return f
}

func bindMount(src, dst string, ro bool) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting %s on %s: %w", src, dst, err)
	}
	if ro {
		flags := lockedFlags(dst) | unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY
		if err := unix.Mount("", dst, "", flags, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", dst, err)
		}
	}
	return nil
}

func setupRootfs(cfg *childConfig) error {
	root := cfg.Rootfs
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding the rootfs: %w", err)
	}
	in := func(p string) (string, error) { return securejoin.SecureJoin(root, p) }
	proc, err := in("/proc")
	if err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	dev, err := in("/dev")
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		t := filepath.Join(dev, d)
		if f, err := os.OpenFile(t, os.O_CREATE|os.O_WRONLY, 0o666); err == nil {
			f.Close()
		}
		if err := unix.Mount("/dev/"+d, t, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding /dev/%s: %w", d, err)
		}
	}
	for l, t := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"} {
		_ = os.Symlink(t, filepath.Join(dev, l))
	}
	_ = os.Mkdir(filepath.Join(dev, "pts"), 0o755)
	_ = unix.Mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
	_ = os.Mkdir(filepath.Join(dev, "shm"), 0o1777)
	if err := unix.Mount("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mounting /dev/shm: %w", err)
	}
	sys, err := in("/sys")
	if err != nil {
		return err
	}
	if err := unix.Mount("sysfs", sys, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		// Not the owner of the network namespace: the host's /sys,
		// read-only.
		if err := bindMount("/sys", sys, true); err != nil {
			return err
		}
	}
	for _, f := range [][2]string{{cfg.ResolvConf, "/etc/resolv.conf"}, {cfg.Hosts, "/etc/hosts"}} {
		t, err := in(f[1])
		if err != nil {
			return err
		}
		if err := bindMount(f[0], t, false); err != nil {
			return err
		}
	}
	for _, m := range cfg.Mounts {
		t, err := in(m.Target)
		if err != nil {
			return err
		}
		switch m.Type {
		case "tmpfs":
			opt := "mode=1777"
			if m.Size > 0 {
				opt += fmt.Sprintf(",size=%d", m.Size)
			}
			if err := unix.Mount("tmpfs", t, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opt); err != nil {
				return fmt.Errorf("mounting a tmpfs on %s: %w", m.Target, err)
			}
		default:
			if err := bindMount(m.Source, t, m.ReadOnly); err != nil {
				return err
			}
		}
	}
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into the rootfs: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}

// dropCaps keeps docker's default capability set, as RUN steps get in
// docker builds.
func dropCaps() error {
	want := map[string]bool{}
	for _, c := range runner.DefaultCaps {
		want[c] = true
	}
	caps, err := capability.NewPid2(0)
	if err != nil {
		return err
	}
	if err := caps.Load(); err != nil {
		return err
	}
	which := capability.EFFECTIVE | capability.PERMITTED | capability.BOUNDING
	caps.Clear(which | capability.INHERITABLE | capability.AMBIENT)
	for _, c := range capability.ListKnown() {
		if want["CAP_"+strings.ToUpper(c.String())] {
			caps.Set(which, c)
		}
	}
	return caps.Apply(capability.CAPS | capability.BOUNDS | capability.AMBS)
}
