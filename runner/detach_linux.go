package runner

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nook-containers/nook/runner/monitor"
)

// A detached container is supervised by its monitor (package monitor, a
// small C program inside nook): Start spawns it, hands it the init's
// configuration, attaches the network to the namespace the monitor keeps
// open (/proc/MONITOR/fd/5, so that the lease lives exactly as long as the
// monitor), and waits for the monitor's report of the first start. From
// then on the monitor records the container's state in monitor.json; the
// commands here (stop, kill, wait, rm) act on the container's processes
// and leave flag files for the monitor.

const (
	flagStopped  = "stopped"  // stop or kill: do not restart
	flagRemoving = "removing" // rm -f: do not restart, do not clean up (rm does)
	fileMonLog   = "monitor.log"
)

// LogPath is where a detached container's output goes (docker's name).
func (c *Container) LogPath() string { return filepath.Join(c.Dir, c.ID+"-json.log") }

// Start starts a created or exited container in the background, under a
// new monitor. It returns when the command runs (or failed to start).
func (r *Runtime) Start(ctx context.Context, c *Container) (err error) {
	if !monitor.Available {
		return userErr("detached containers need the monitor, which a build without cgo does not have")
	}
	if c.State.Active() {
		return nil // docker start of a running container does nothing
	}
	// The monitor of the previous run may still be cleaning up.
	r.waitSupervisor(c, 30*time.Second)
	if c.State.Active() {
		return nil
	}
	policy, err := ParseRestartPolicy(c.Options.Restart)
	if err != nil {
		return &UserError{Err: err}
	}
	lc, err := ParseLogConfig(c.Options.LogDriver, c.Options.LogOpts)
	if err != nil {
		return &UserError{Err: err}
	}
	spec, err := c.Spec()
	if err != nil {
		return err
	}
	st := r.Store.Storage()
	if n, _ := st.Mounted(c.ID); n == 0 {
		rootfs, err := st.Mount(c.ID, "")
		if err != nil {
			return fmt.Errorf("mounting the container's file system: %w", err)
		}
		spec.Root.Path = rootfs
	}
	o := &c.Options
	ic := &initConfig{Spec: spec, Rootfs: spec.Root.Path, Rootless: r.Rootless, HostNetwork: o.Network == "host", Console: spec.Process.Terminal}
	ic.JoinNetNS = !ic.HostNetwork
	cfg, err := json.Marshal(ic)
	if err != nil {
		return err
	}

	// Records of earlier runs go; this run gets a new generation.
	for _, f := range []string{flagStopped, flagRemoving, fileMonitor, fileHealth} {
		if err := os.Remove(filepath.Join(c.Dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("clearing %s: %w", f, err)
		}
	}
	if err := updateState(c, func(s *State) {
		s.Generation++
		s.Detached = true
		s.UserNS = userNS()
		s.Error = ""
		s.RestartCount = 0
		s.Health = nil
		if c.Healthcheck != nil {
			s.Health = &Health{Status: HealthStarting, Log: []HealthLog{}}
		}
	}); err != nil {
		return err
	}
	gen := c.State.Generation
	fail := func(code int, err error) error {
		r.stopped(c, code, err.Error())
		_ = updateState(c, func(s *State) { s.Detached = false })
		return err
	}

	// The monitor's descriptors (see monitor.h).
	var closers []*os.File
	defer func() {
		for _, f := range closers {
			f.Close()
		}
	}()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fail(codeFailed, err)
	}
	closers = append(closers, devnull)
	extra := make([]*os.File, monitor.FDExe-2) // fds 3..7
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return fail(codeFailed, err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return fail(codeFailed, err)
	}
	closers = append(closers, cfgR, cfgW, repR, repW)
	extra[monitor.FDConfig-3], extra[monitor.FDReport-3] = cfgR, repW
	extra[monitor.FDNetNS-3], extra[monitor.FDHolder-3] = devnull, devnull
	hasNetNS, hasHolder := false, false
	var pending *pendingNetNS
	if !ic.HostNetwork {
		pending = r.netns
		r.netns = nil
		if pending == nil {
			pending = newNetNSAsync()
		}
		defer pending.close()
		ns, err := pending.wait()
		if err != nil {
			return fail(codeFailed, err)
		}
		extra[monitor.FDNetNS-3], hasNetNS = ns, true
	}
	if r.Rootless && r.HolderPID > 0 {
		// The monitor watches the holder: a container cannot outlive the
		// namespaces it was made in.
		fd, err := unix.PidfdOpen(r.HolderPID, 0)
		if err != nil {
			return fail(codeFailed, fmt.Errorf("watching the user namespace holder (pid %d): %w", r.HolderPID, err))
		}
		f := os.NewFile(uintptr(fd), "holder")
		closers = append(closers, f)
		extra[monitor.FDHolder-3], hasHolder = f, true
	}
	exe, err := sealedExeFile(r.ScratchDir)
	if err != nil {
		return fail(codeFailed, err)
	}
	closers = append(closers, exe)
	extra[monitor.FDExe-3] = exe

	var cg *CgroupPlan
	if spec.Linux != nil && spec.Linux.CgroupsPath != "" {
		cg = &CgroupPlan{Path: spec.Linux.CgroupsPath, Memory: o.Memory, CPUs: o.CPUs, PidsLimit: o.PidsLimit}
		if err := cg.Create(); err != nil {
			return fail(codeFailed, err)
		}
	}
	logArg := c.LogPath()
	if lc.Type == "none" {
		logArg = "none"
	}
	args := []string{
		monitor.Arg0, "dir=" + c.Dir, "id=" + c.ID, "generation=" + strconv.Itoa(gen),
		"log=" + logArg, "log-max-size=" + strconv.FormatInt(lc.MaxSize, 10), "log-max-file=" + strconv.Itoa(lc.MaxFile),
		"restart=" + policy.String(), "tty=" + boolArg(ic.Console), "stdin=" + boolArg(o.Interactive),
		"netns=" + boolArg(hasNetNS), "holder=" + boolArg(hasHolder),
	}
	if c.Healthcheck != nil {
		h := c.Healthcheck.withDefaults()
		args = append(args, "health-interval="+ms(h.Interval), "health-start-period="+ms(h.StartPeriod),
			"health-start-interval="+ms(h.StartInterval))
	}
	if cg != nil {
		args = append(args, "cgroup="+cg.Path)
	}
	helper, err := r.helperArgs()
	if err != nil {
		return fail(codeFailed, err)
	}
	args = append(append(args, "--"), helper...)
	monLog, err := os.OpenFile(filepath.Join(c.Dir, fileMonLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fail(codeFailed, fmt.Errorf("creating the monitor's log: %w", err))
	}
	closers = append(closers, monLog)
	// Descriptors this process inherited without close-on-exec must not
	// reach the monitor (it would keep, say, a caller's pipe open).
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	cmd := &exec.Cmd{
		Path: helper[0], Args: args, Env: os.Environ(), Stderr: monLog, ExtraFiles: extra, Dir: "/",
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		if cg != nil {
			_ = cg.Remove()
		}
		return fail(codeFailed, fmt.Errorf("starting the container's monitor: %w", err))
	}
	for _, f := range []*os.File{cfgR, repW, exe} {
		f.Close()
	}
	abort := func(code int, err error) error {
		cfgW.Close()
		_ = cmd.Wait()
		if cg != nil {
			_ = cg.Remove()
		}
		return fail(code, err)
	}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(cfg)))
	if _, err := cfgW.Write(append(hdr[:], cfg...)); err != nil {
		return abort(codeFailed, fmt.Errorf("configuring the container's monitor: %w", r.monitorFailure(c, err)))
	}
	if hasNetNS {
		nsPath := fmt.Sprintf("/proc/%d/fd/%d", cmd.Process.Pid, monitor.FDNetNS)
		if err := r.attachNetwork(ctx, c, nsPath); err != nil {
			return abort(codeFailed, err)
		}
		// The monitor keeps the namespace: drop ours, so that it dies
		// with the monitor (and takes its veth pair along).
		pending.close()
	}
	if _, err := cfgW.Write([]byte{1}); err != nil {
		return abort(codeFailed, fmt.Errorf("starting the container: %w", r.monitorFailure(c, err)))
	}
	cfgW.Close()
	repW.Close()
	report, _ := io.ReadAll(repR)
	switch {
	case len(report) > 1 && report[0] == 'O':
		_ = cmd.Process.Release()
		r.refresh(c)
		return nil
	case len(report) > 1 && report[0] == 'E':
		_ = cmd.Wait()
		if cg != nil {
			_ = cg.Remove()
		}
		var ie initError
		if err := json.Unmarshal(report[1:], &ie); err != nil {
			return fail(codeFailed, fmt.Errorf("the container failed to start: %s", report[1:]))
		}
		return fail(ie.Code, &ie)
	}
	return abort(codeFailed, r.monitorFailure(c, errors.New("the container's monitor ended during start-up")))
}

// monitorFailure adds the monitor's own words, if it left any, to err.
func (r *Runtime) monitorFailure(c *Container, err error) error {
	b, _ := os.ReadFile(filepath.Join(c.Dir, fileMonLog))
	if b = bytes.TrimSpace(b); len(b) > 0 {
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		return fmt.Errorf("%w: %s", err, b)
	}
	return err
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// helperArgs is nook with the global flags that find this store, which
// the monitor runs for health checks and the clean-up.
func (r *Runtime) helperArgs() ([]string, error) {
	if len(r.HelperArgs) > 0 {
		return r.HelperArgs, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding nook's executable: %w", err)
	}
	return []string{self}, nil
}

// sealedExeFile is a new descriptor of the read-only handle of nook's
// binary (see seal_linux.go), for a child to execute.
func sealedExeFile(scratch string) (*os.File, error) {
	p, err := sealedExe(scratch)
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(p, "/proc/self/fd/"))
	if err != nil {
		return nil, fmt.Errorf("sealed executable %s: %w", p, err)
	}
	fd, err := unix.FcntlInt(uintptr(n), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("duplicating the sealed executable: %w", err)
	}
	return os.NewFile(uintptr(fd), "nook"), nil
}

// refresh re-reads a container's state (with its monitor's records).
func (r *Runtime) refresh(c *Container) {
	var s State
	if err := readJSON(c.Dir, fileState, &s); err != nil {
		return
	}
	if s.Status == "" {
		s.Status = StatusCreated
	}
	overlay(c.Dir, &s)
	c.State = s
	reconcile(c)
}

// Cleanup releases what a detached container held once it has stopped
// for good: its network, its mount, its cgroup; with --rm, the container
// itself. Its monitor runs it (`nook container cleanup`) before exiting.
func (r *Runtime) Cleanup(ctx context.Context, c *Container) error {
	if c.State.Running() && alive(c.State.Pid, c.State.PidStart) {
		return userErr("container %s is running", c.Name)
	}
	r.detachNetwork(c)
	if spec, err := c.Spec(); err == nil && spec.Linux != nil && spec.Linux.CgroupsPath != "" {
		_ = (&CgroupPlan{Path: spec.Linux.CgroupsPath}).Remove()
	}
	if _, err := r.Store.Storage().Unmount(c.ID, false); err != nil {
		_ = err // unmounted already, or removed meanwhile
	}
	seen := c.State
	err := updateState(c, func(s *State) {
		if s.Generation != seen.Generation || !s.Detached {
			return
		}
		gen := s.Generation
		*s = seen
		s.Generation, s.Detached, s.Network, s.Pid, s.PidStart = gen, false, nil, 0, 0
		if s.Status != StatusExited {
			s.Status = StatusExited
		}
	})
	if err != nil {
		return err
	}
	if c.Options.Remove {
		return r.remove(ctx, c, RemoveOptions{Force: true, Volumes: true}, false)
	}
	return nil
}
