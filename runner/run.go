package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.podman.io/storage"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/nook-containers/nook/store"
)

// Runtime runs containers from one store. It is cheap to make: a command
// makes one per invocation.
type Runtime struct {
	Store *store.Store
	// Network attaches containers on the default and user networks; nil
	// gives them a network namespace with loopback only.
	Network NetworkAttacher
	// Rootless: nook runs in the user's namespace, without real root.
	Rootless bool
	// ScratchDir is a private directory for volatile files.
	ScratchDir string
	// EnsureImage finds (and, as the pull policy says, pulls) an image;
	// nil: local images only.
	EnsureImage func(ctx context.Context, ref string) (*store.Image, error)
	// HelperArgs is nook's executable and the global flags that lead to
	// this store: a detached container's monitor runs it for health
	// checks and the clean-up. Empty: this executable, default flags.
	HelperArgs []string
	// HolderPID is the user namespace holder's pause process (rootless);
	// a detached container's monitor stops the container when it dies.
	HolderPID int

	netns *pendingNetNS // made ahead by Create for StartAttached
}

// ImageNotFoundError says the image is not in the store.
type ImageNotFoundError struct{ Ref string }

func (e *ImageNotFoundError) Error() string {
	return fmt.Sprintf("image %s not found locally: pull it first (nook pull %s)", e.Ref, e.Ref)
}

func (r *Runtime) image(ctx context.Context, ref string) (*store.Image, error) {
	if r.EnsureImage != nil {
		return r.EnsureImage(ctx, ref)
	}
	img, err := r.Store.Lookup(ref)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			var amb *store.AmbiguousIDError
			if errors.As(err, &amb) {
				return nil, err
			}
			return nil, &ImageNotFoundError{Ref: ref}
		}
		return nil, err
	}
	return img, nil
}

// mountRequests parses -v, --mount and --tmpfs, and adds anonymous
// volumes for the image's VOLUMEs that nothing else covers.
func mountRequests(o *Options, imgVolumes map[string]struct{}) ([]MountRequest, error) {
	var reqs []MountRequest
	for _, v := range o.Volumes {
		m, err := ParseVolume(v)
		if err != nil {
			return nil, &UserError{Err: err}
		}
		reqs = append(reqs, m)
	}
	for _, v := range o.Mounts {
		m, err := ParseMount(v)
		if err != nil {
			return nil, &UserError{Err: err}
		}
		reqs = append(reqs, m)
	}
	for _, v := range o.Tmpfs {
		m, err := ParseTmpfs(v)
		if err != nil {
			return nil, &UserError{Err: err}
		}
		reqs = append(reqs, m)
	}
	covered := map[string]bool{}
	for _, m := range reqs {
		covered[path.Clean(m.Target)] = true
	}
	var extra []string
	for v := range imgVolumes {
		if p := path.Clean(v); path.IsAbs(p) && !covered[p] {
			extra = append(extra, p)
		}
	}
	sort.Strings(extra)
	for _, p := range extra {
		reqs = append(reqs, MountRequest{Type: "volume", Target: p})
	}
	for _, m := range reqs {
		if m.Type == "bind" {
			if _, err := os.Stat(m.Source); err != nil {
				return nil, userErr("bind source path does not exist: %s", m.Source)
			}
		}
	}
	return reqs, nil
}

func hostHostname() string {
	h, _ := os.Hostname()
	return h
}

// Create makes a container: its record, its writable layer (mounted), its
// volumes and its OCI configuration. Nothing is left behind on error.
func (r *Runtime) Create(ctx context.Context, o *Options) (c *Container, err error) {
	if o.Name != "" {
		if err := validName(o.Name); err != nil {
			return nil, &UserError{Err: err}
		}
	}
	switch o.Network {
	case "", "bridge", "default", "none", "host":
	default:
		if r.Network == nil {
			return nil, userErr("network %s not found", o.Network)
		}
	}
	img, err := r.image(ctx, o.Image)
	if err != nil {
		return nil, err
	}
	cfgFile, err := img.OCIConfig()
	if err != nil {
		return nil, err
	}
	imgCfg := cfgFile.Config
	if _, err := Command(imgCfg, o); err != nil {
		return nil, err
	}
	reqs, err := mountRequests(o, imgCfg.Volumes)
	if err != nil {
		return nil, err
	}
	if _, err := Rlimits(o.Ulimits); err != nil {
		return nil, err
	}
	if _, err := securityOptions(o.SecurityOpt); err != nil {
		return nil, err
	}
	if _, err := ParseRestartPolicy(o.Restart); err != nil {
		return nil, &UserError{Err: err}
	}
	if _, err := ParseLogConfig(o.LogDriver, o.LogOpts); err != nil {
		return nil, &UserError{Err: err}
	}
	id := newID()
	cg, err := PlanCgroup(DetectCgroupHost(), id, o)
	if err != nil {
		return nil, err
	}
	if o.Network != "host" && r.netns == nil {
		r.netns = newNetNSAsync()
	}
	st := r.Store.Storage()
	name := o.Name
	for tries := 0; ; tries++ {
		if name == "" {
			name = randomName()
			if tries > 5 {
				name += "_" + id[:6]
			}
		}
		// A --rm container never outlives its run: its record goes to the
		// store's volatile files (written without fsync) and its overlay is
		// mounted "volatile" (no syncs of the upper layer).
		_, err = st.CreateContainer(id, []string{name}, img.ID, "", "", &storage.ContainerOptions{Volatile: o.Remove})
		if err == nil {
			break
		}
		if errors.Is(err, storage.ErrDuplicateName) {
			if o.Name != "" {
				other := "?"
				if oc, err2 := st.Container(name); err2 == nil {
					other = oc.ID
				}
				return nil, &UserError{Err: &NameInUseError{Name: name, ID: other}}
			}
			name = ""
			continue
		}
		return nil, fmt.Errorf("creating the container: %w", err)
	}
	var anon []string
	defer func() {
		if err != nil {
			r.destroy(id, anon)
		}
	}()
	dir, err := st.ContainerDirectory(id)
	if err != nil {
		return nil, err
	}
	rootfs, err := st.Mount(id, "")
	if err != nil {
		return nil, fmt.Errorf("mounting the container's file system: %w", err)
	}
	mounts, err := ResolveMounts(reqs, r.volumeDirFor(rootfs, &anon))
	if err != nil {
		return nil, err
	}
	hostname := o.Hostname
	if hostname == "" {
		hostname = id[:12]
		if o.Network == "host" {
			hostname = hostHostname()
		}
	}
	etc, err := writeEtcFiles(dir, hostname, o)
	if err != nil {
		return nil, err
	}
	spec, err := Spec(SpecInput{
		ID: id, Image: imgCfg, Rootfs: rootfs, Options: o, Mounts: mounts, Rootless: r.Rootless,
		HostHostname: hostHostname(), EtcFiles: etc, Cgroup: cg,
	})
	if err != nil {
		return nil, err
	}
	c = &Container{
		ID: id, Name: name, Created: time.Now().UTC(), Image: o.Image, ImageID: img.ID, Rootfs: rootfs,
		Options: *o, Args: spec.Process.Args, Anonymous: anon, Volumes: reqs, Labels: mergeLabels(imgCfg.Labels, o.Labels),
		Exposed:    exposedPorts(imgCfg),
		StopSignal: stopSignal(imgCfg, o), Dir: dir, Healthcheck: EffectiveHealthcheck(imgCfg.Healthcheck, o),
	}
	c.Options.Name = name
	if err = writeJSON(dir, fileSpec, spec); err != nil {
		return nil, err
	}
	c.State = State{Status: StatusCreated}
	if err = writeJSON(dir, fileState, &c.State); err != nil {
		return nil, err
	}
	if err = writeJSON(dir, fileContainer, c); err != nil {
		return nil, err
	}
	return c, nil
}

func exposedPorts(img v1.Config) []string {
	var out []string
	for p := range img.ExposedPorts {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func mergeLabels(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func stopSignal(img v1.Config, o *Options) string {
	if o.StopSignal != "" {
		return o.StopSignal
	}
	if img.StopSignal != "" {
		return img.StopSignal
	}
	return "SIGTERM"
}

// writeEtcFiles writes the container's /etc/hostname, /etc/hosts and
// /etc/resolv.conf (a network attacher rewrites them in place).
func writeEtcFiles(dir, hostname string, o *Options) (map[string]string, error) {
	files := map[string]string{
		"/etc/hostname":    filepath.Join(dir, "hostname"),
		"/etc/hosts":       filepath.Join(dir, "hosts"),
		"/etc/resolv.conf": filepath.Join(dir, "resolv.conf"),
	}
	var hosts, resolv []byte
	if o.Network == "host" {
		hosts, _ = os.ReadFile("/etc/hosts")
		resolv, _ = os.ReadFile("/etc/resolv.conf")
	} else {
		hosts = []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t" + hostname + "\n")
		for _, h := range o.AddHosts {
			name, ip, ok := strings.Cut(h, ":")
			if !ok || name == "" || ip == "" {
				return nil, userErr("invalid --add-host %q: want HOST:IP", h)
			}
			hosts = append(hosts, ip+"\t"+name+"\n"...)
		}
		host, _ := os.ReadFile("/etc/resolv.conf")
		for _, line := range strings.Split(string(host), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "nameserver" && (strings.HasPrefix(f[1], "127.") || f[1] == "::1") {
				continue // the host's loopback is not the container's
			}
			if line != "" {
				resolv = append(resolv, line+"\n"...)
			}
		}
		if len(o.DNS) > 0 {
			resolv = nil
			for _, d := range o.DNS {
				resolv = append(resolv, "nameserver "+d+"\n"...)
			}
		}
	}
	for name, content := range map[string][]byte{"hostname": []byte(hostname + "\n"), "hosts": hosts, "resolv.conf": resolv} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return nil, fmt.Errorf("writing the container's %s: %w", name, err)
		}
	}
	return files, nil
}

// destroy removes what Create made for id.
func (r *Runtime) destroy(id string, anon []string) {
	st := r.Store.Storage()
	_, _ = st.Unmount(id, true)
	_ = st.DeleteContainer(id)
	for _, v := range anon {
		_ = r.VolumeRemove(v, true)
	}
}

// AttachIO says where a foreground container's streams go.
type AttachIO = IO

// StartAttached starts a created (or exited) container and supervises it
// in this process until it ends: streams are copied, signals from sigs
// forwarded (a second SIGINT or SIGTERM kills it), the exit code returned.
func (r *Runtime) StartAttached(ctx context.Context, c *Container, stdio IO, sigs <-chan os.Signal) (int, error) {
	if c.State.Running() {
		return codeFailed, userErr("container %s is already running", c.Name)
	}
	spec, err := c.Spec()
	if err != nil {
		return codeFailed, err
	}
	st := r.Store.Storage()
	n, _ := st.Mounted(c.ID)
	if n == 0 {
		rootfs, err := st.Mount(c.ID, "")
		if err != nil {
			return codeFailed, fmt.Errorf("mounting the container's file system: %w", err)
		}
		spec.Root.Path = rootfs
	}
	o := &c.Options
	ic := &initConfig{Spec: spec, Rootfs: spec.Root.Path, Rootless: r.Rootless, HostNetwork: o.Network == "host", Console: spec.Process.Terminal}

	// Streams: pipes (or the pty) between this process and the container,
	// never this process's own descriptors.
	var closers []io.Closer
	defer func() {
		for _, cl := range closers {
			cl.Close()
		}
	}()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return codeFailed, err
	}
	closers = append(closers, devnull)
	cs := initStdio{Stdin: devnull, Stdout: devnull, Stderr: devnull}
	var copies []chan struct{}
	// The output is logged too (`nook logs`), unless --rm removes the
	// container anyway.
	var jl *jsonLog
	if !o.Remove {
		jl = openJSONLog(c)
		defer jl.Close()
	}
	copyOut := func(w io.Writer, rd *os.File, stream string) {
		done := make(chan struct{})
		copies = append(copies, done)
		if w == nil {
			w = io.Discard
		}
		if jl != nil {
			w = io.MultiWriter(jl.stream(stream), w)
		}
		go func() {
			_, _ = io.Copy(w, rd)
			rd.Close()
			close(done)
		}()
	}
	var stdinW *os.File
	if !ic.Console {
		if o.Interactive && stdio.Stdin != nil {
			pr, pw, err := os.Pipe()
			if err != nil {
				return codeFailed, err
			}
			cs.Stdin, stdinW = pr, pw
			closers = append(closers, pr)
		}
		or, ow, err := os.Pipe()
		if err != nil {
			return codeFailed, err
		}
		er, ew, err := os.Pipe()
		if err != nil {
			return codeFailed, err
		}
		cs.Stdout, cs.Stderr = ow, ew
		closers = append(closers, ow, ew)
		copyOut(stdio.Stdout, or, "stdout")
		copyOut(stdio.Stderr, er, "stderr")
	}

	var netns *os.File
	var pending *pendingNetNS
	netnsPath := ""
	if r.netns != nil && !ic.HostNetwork {
		pending = r.netns
		r.netns = nil
		defer pending.close()
		if netns, err = pending.wait(); err != nil {
			return codeFailed, err
		}
		netnsPath = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), netns.Fd())
	}
	p, err := startInit(ic, cs, r.ScratchDir, false, netns)
	if err != nil {
		return codeFailed, err
	}
	if netnsPath == "" {
		netnsPath = fmt.Sprintf("/proc/%d/ns/net", p.Pid)
	}
	for _, cl := range closers[1:] {
		cl.Close() // the child has its copies
	}
	closers = closers[:1]
	if stdinW != nil {
		go func() {
			_, _ = io.Copy(stdinW, stdio.Stdin)
			stdinW.Close()
		}()
	}
	fail := func(err error) (int, error) {
		p.abort()
		r.stopped(c, codeFailed, err.Error())
		return codeFailed, err
	}
	if err := r.attachNetwork(ctx, c, netnsPath); err != nil {
		return fail(err)
	}
	var cg *CgroupPlan
	if spec.Linux != nil && spec.Linux.CgroupsPath != "" {
		cg = &CgroupPlan{Path: spec.Linux.CgroupsPath, Memory: o.Memory, CPUs: o.CPUs, PidsLimit: o.PidsLimit}
		if err := cg.Create(); err != nil {
			return fail(err)
		}
		defer cg.Remove()
		if err := cg.AddProcess(p.Pid); err != nil {
			return fail(err)
		}
	}
	if err := p.sendConfig(ic); err != nil {
		return fail(r.initFailure(p, err))
	}
	var restore func()
	if ic.Console {
		master, err := p.receiveConsole()
		if err != nil {
			return fail(r.initFailure(p, err))
		}
		closers = append(closers, master)
		resize := func() {
			if stdio.TermOut != nil {
				if ws, err := unix.IoctlGetWinsize(int(stdio.TermOut.Fd()), unix.TIOCGWINSZ); err == nil {
					_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
				}
			}
		}
		resize()
		if o.Interactive && stdio.TermIn != nil {
			if old, err := term.MakeRaw(int(stdio.TermIn.Fd())); err == nil {
				fd := int(stdio.TermIn.Fd())
				restore = func() { _ = term.Restore(fd, old) }
			}
		}
		if err := p.resume(); err != nil {
			if restore != nil {
				restore()
			}
			return fail(r.initFailure(p, err))
		}
		copyOut(stdio.Stdout, master, "stdout")
		if o.Interactive && stdio.Stdin != nil {
			go func() { _, _ = io.Copy(master, stdio.Stdin) }()
		}
		sigs = withResize(sigs, resize)
	}
	if restore != nil {
		defer restore()
	}
	if err := p.waitExec(); err != nil {
		code := codeFailed
		var ie *initError
		if errors.As(err, &ie) {
			code = ie.Code
		}
		_, _ = p.cmd.Process.Wait()
		for _, d := range copies {
			<-d
		}
		r.stopped(c, code, err.Error())
		return code, err
	}
	if err := updateState(c, func(s *State) {
		*s = State{Status: StatusRunning, Pid: p.Pid, PidStart: procStart(p.Pid), Owner: os.Getpid(),
			OwnerStart: procStart(os.Getpid()), StartedAt: p.Started.UTC(), Network: s.Network, Generation: s.Generation + 1,
			UserNS: userNS()}
	}); err != nil {
		_ = p.cmd.Process.Kill()
	}

	done := make(chan struct{})
	go forwardSignals(sigs, p.Pid, done)
	code, _ := p.wait()
	close(done)
	for _, d := range copies {
		<-d
	}
	// Let the namespace die with its last process before the network is
	// detached: deleting a veth whose namespace is still alive costs
	// about 20 ms, while a dead namespace takes its pair with it.
	if pending != nil {
		pending.close()
	}
	if o.Remove {
		// Remove follows: recording the end and unmounting would be
		// undone at once.
		r.detachNetwork(c)
		c.State.Status, c.State.ExitCode, c.State.Pid = StatusExited, code, 0
		return code, nil
	}
	r.stopped(c, code, "")
	return code, nil
}

// withResize handles SIGWINCH locally and passes every other signal on.
func withResize(in <-chan os.Signal, resize func()) <-chan os.Signal {
	if in == nil {
		return nil
	}
	out := make(chan os.Signal, 8)
	go func() {
		for s := range in {
			if s == unix.SIGWINCH {
				resize()
				continue
			}
			out <- s
		}
		close(out)
	}()
	return out
}

func forwardSignals(sigs <-chan os.Signal, pid int, done <-chan struct{}) {
	if sigs == nil {
		return
	}
	stops := 0
	for {
		select {
		case <-done:
			return
		case s, ok := <-sigs:
			if !ok {
				return
			}
			sig, isSys := s.(syscall.Signal)
			if !isSys || sig == unix.SIGWINCH || sig == unix.SIGCHLD || sig == unix.SIGURG {
				continue
			}
			if sig == unix.SIGINT || sig == unix.SIGTERM {
				stops++
				if stops > 1 {
					sig = unix.SIGKILL // asked twice: stop for real
				}
			}
			_ = unix.Kill(pid, sig)
		}
	}
}

// initFailure prefers the init's own report over a broken pipe.
func (r *Runtime) initFailure(p *initProcess, err error) error {
	if p.status != nil {
		if ierr := p.waitExec(); ierr != nil {
			return ierr
		}
	}
	return err
}

// stopped records the end of a run and releases what the run held (the
// network, the mount).
func (r *Runtime) stopped(c *Container, code int, msg string) {
	r.detachNetwork(c)
	_ = updateState(c, func(s *State) {
		s.Status = StatusExited
		s.ExitCode = code
		s.Error = msg
		s.Pid = 0
		s.PidStart = 0
		s.FinishedAt = time.Now().UTC()
		s.Network = nil
	})
	_, _ = r.Store.Storage().Unmount(c.ID, false)
}

func (r *Runtime) networkOptions(c *Container) NetworkOptions {
	o := &c.Options
	hn, _ := os.ReadFile(filepath.Join(c.Dir, "hostname"))
	return NetworkOptions{
		Network: o.Network, Name: c.Name, Hostname: strings.TrimSpace(string(hn)), Ports: o.Ports,
		PublishAll: o.PublishAll, AddHosts: o.AddHosts, DNS: o.DNS, Exposed: c.Exposed,
		DNSSearch: o.DNSSearch, DNSOptions: o.DNSOptions, Domainname: o.Domainname, IP: o.IP, Aliases: o.Aliases,
		HostsPath: filepath.Join(c.Dir, "hosts"), ResolvConfPath: filepath.Join(c.Dir, "resolv.conf"),
		HostnamePath: filepath.Join(c.Dir, "hostname"),
	}
}

func usesAttacher(o *Options) bool { return o.Network != "none" && o.Network != "host" }

func (r *Runtime) attachNetwork(ctx context.Context, c *Container, netnsPath string) error {
	if r.Network == nil || !usesAttacher(&c.Options) {
		if len(c.Options.Ports) > 0 || c.Options.PublishAll {
			if !usesAttacher(&c.Options) {
				return nil // docker ignores -p with --network none/host
			}
			return userErr("publishing ports needs the container network, which is not available in this build")
		}
		return nil
	}
	res, err := r.Network.Attach(ctx, c.ID, netnsPath, r.networkOptions(c))
	if err != nil {
		return fmt.Errorf("connecting the container to its network: %w", err)
	}
	return updateState(c, func(s *State) { s.Network = res })
}

func (r *Runtime) detachNetwork(c *Container) {
	if r.Network == nil || !usesAttacher(&c.Options) {
		return
	}
	_ = r.Network.Detach(context.Background(), c.ID, r.networkOptions(c))
}

// RemoveOptions are docker rm's flags.
type RemoveOptions struct {
	Force   bool // kill a running container first
	Volumes bool // remove its anonymous volumes too
}

// Remove deletes a container, its writable layer and its records. A
// running container (with Force) is killed first; a detached one's
// monitor is told not to restart it and waited for.
func (r *Runtime) Remove(ctx context.Context, c *Container, o RemoveOptions) error {
	return r.remove(ctx, c, o, true)
}

func (r *Runtime) remove(ctx context.Context, c *Container, o RemoveOptions, waitMonitor bool) error {
	wasActive := c.State.Active()
	if wasActive {
		if !o.Force {
			return &UserError{Err: fmt.Errorf("cannot remove container %s: it is running: stop it first, or use rm -f", c.Name)}
		}
		r.flag(c, flagRemoving)
		if c.State.Status == StatusRunning {
			if err := r.kill(c, unix.SIGKILL); err != nil {
				return err
			}
			if !waitGone(c.State.Pid, c.State.PidStart, 10*time.Second) {
				return fmt.Errorf("container %s did not stop after SIGKILL", c.Name)
			}
		}
	}
	if waitMonitor {
		r.waitSupervisor(c, 10*time.Second)
	}
	if wasActive || c.State.Network != nil {
		r.detachNetwork(c)
	}
	st := r.Store.Storage()
	// DeleteContainer unmounts the layer first.
	// (Its supervisor may have removed it meanwhile: a foreground --rm.)
	if err := st.DeleteContainer(c.ID); err != nil && !errors.Is(err, storage.ErrContainerUnknown) && !errors.Is(err, storage.ErrNotAContainer) {
		return fmt.Errorf("removing container %s: %w", c.Name, err)
	}
	if o.Volumes {
		for _, v := range c.Anonymous {
			_ = r.VolumeRemove(v, true)
		}
	}
	return nil
}

func (r *Runtime) kill(c *Container, sig unix.Signal) error {
	if !alive(c.State.Pid, c.State.PidStart) {
		return nil
	}
	if err := unix.Kill(c.State.Pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signalling container %s: %w", c.Name, err)
	}
	return nil
}

func waitGone(pid int, start uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for d := time.Millisecond; time.Now().Before(deadline); d = min(d*2, 50*time.Millisecond) {
		if !alive(pid, start) {
			return true
		}
		time.Sleep(d)
	}
	return !alive(pid, start)
}
