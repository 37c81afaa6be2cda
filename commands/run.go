package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/nook-containers/nook/pusher"
	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
	"github.com/nook-containers/nook/userns"
)

// containerFlags are the flags run and create share (docker's names).
func containerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "name", Usage: "assign a name to the container"},
		&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep stdin open"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-terminal"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable (VAR=value, or VAR to pass it on)"},
		&cli.StringSliceFlag{Name: "env-file", Usage: "read environment variables from a file"},
		&cli.StringFlag{Name: "entrypoint", Usage: "override the image's ENTRYPOINT (also drops its CMD)"},
		&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory inside the container"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "user[:group], names from the image's /etc/passwd or numbers"},
		&cli.StringSliceFlag{Name: "group-add", Usage: "additional groups to join"},
		&cli.StringFlag{Name: "hostname", Usage: "container host name"},
		&cli.StringFlag{Name: "domainname", Usage: "container NIS domain name"},
		&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "bind mount or volume: [SOURCE:]TARGET[:ro|rw|z|Z|nocopy]"},
		&cli.StringSliceFlag{Name: "mount", Usage: "mount: type=bind|volume|tmpfs,source=...,target=...[,readonly]"},
		&cli.StringSliceFlag{Name: "tmpfs", Usage: "mount a tmpfs: PATH[:OPTIONS]"},
		&cli.BoolFlag{Name: "read-only", Usage: "mount the root file system read-only"},
		&cli.StringSliceFlag{Name: "cap-add", Usage: "add a capability (or ALL)"},
		&cli.StringSliceFlag{Name: "cap-drop", Usage: "drop a capability (or ALL)"},
		&cli.BoolFlag{Name: "privileged", Usage: "give the container every capability, no seccomp, no masked paths"},
		&cli.StringSliceFlag{Name: "security-opt", Usage: "no-new-privileges, seccomp=unconfined|PROFILE.json"},
		&cli.StringSliceFlag{Name: "ulimit", Usage: "resource limit: NAME=SOFT[:HARD]"},
		&cli.StringFlag{Name: "shm-size", Usage: "size of /dev/shm (default 64m)"},
		&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "set a label: KEY=VALUE"},
		&cli.StringFlag{Name: "stop-signal", Usage: "signal that stops the container (default SIGTERM)"},
		&cli.IntFlag{Name: "stop-timeout", Usage: "seconds to wait after the stop signal before killing"},
		&cli.BoolFlag{Name: "init", Usage: "run an init as pid 1 that forwards signals and reaps zombies"},
		&cli.StringFlag{Name: "network", Aliases: []string{"net"}, Usage: "network: bridge (default), none, host or a network name"},
		&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish a port: [IP:]HOSTPORT:CONTAINERPORT[/udp]"},
		&cli.BoolFlag{Name: "publish-all", Aliases: []string{"P"}, Usage: "publish every exposed port on a random host port"},
		&cli.StringSliceFlag{Name: "add-host", Usage: "add HOST:IP to /etc/hosts"},
		&cli.StringSliceFlag{Name: "dns", Usage: "DNS server for the container"},
		&cli.StringSliceFlag{Name: "dns-search", Usage: "DNS search domain for the container"},
		&cli.StringSliceFlag{Name: "dns-option", Aliases: []string{"dns-opt"}, Usage: "DNS resolver option for the container (ndots:2, ...)"},
		&cli.StringFlag{Name: "ip", Usage: "IPv4 address of the container on its network (e.g. 10.89.0.10)"},
		&cli.StringSliceFlag{Name: "network-alias", Usage: "another DNS name of the container on its network"},
		&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Usage: "memory limit (needs cgroup v2 delegation)"},
		&cli.Float64Flag{Name: "cpus", Usage: "number of CPUs (needs cgroup v2 delegation)"},
		&cli.Int64Flag{Name: "pids-limit", Usage: "process limit (needs cgroup v2 delegation)"},
		&cli.StringFlag{Name: "pull", Value: "missing", Usage: "pull the image: missing, always, never or newer"},
		&cli.BoolFlag{Name: "rm", Usage: "remove the container when it exits"},
		&cli.StringFlag{Name: "restart", Value: "no", Usage: "restart policy of a detached container: no, always, unless-stopped, on-failure[:max-retries]"},
		&cli.StringFlag{Name: "health-cmd", Usage: "command to run to check health (run with /bin/sh -c)"},
		&cli.DurationFlag{Name: "health-interval", Usage: "time between running the check (default 30s)"},
		&cli.DurationFlag{Name: "health-timeout", Usage: "maximum time to allow one check to run (default 30s)"},
		&cli.IntFlag{Name: "health-retries", Usage: "consecutive failures needed to report unhealthy (default 3)"},
		&cli.DurationFlag{Name: "health-start-period", Usage: "start period during which failures do not count"},
		&cli.DurationFlag{Name: "health-start-interval", Usage: "time between running the check during the start period (default 5s)"},
		&cli.BoolFlag{Name: "no-healthcheck", Usage: "disable any HEALTHCHECK of the image"},
		&cli.StringFlag{Name: "log-driver", Value: "json-file", Usage: "logging driver of a detached container: json-file or none"},
		&cli.StringSliceFlag{Name: "log-opt", Usage: "log driver option: max-size=10m, max-file=3"},
	}
}

// runOptions turns the flags and arguments into runner.Options.
func runOptions(c *cli.Context) (*runner.Options, error) {
	if c.NArg() < 1 {
		return nil, usageError(c, "%q requires at least 1 argument: IMAGE [COMMAND] [ARG...]", c.Command.Name)
	}
	o := &runner.Options{
		Name: c.String("name"), Image: c.Args().First(), Cmd: c.Args().Slice()[1:],
		WorkingDir: c.String("workdir"), User: c.String("user"), GroupAdd: c.StringSlice("group-add"),
		Hostname: c.String("hostname"), Domainname: c.String("domainname"),
		Tty: c.Bool("tty"), Interactive: c.Bool("interactive"),
		CapAdd: c.StringSlice("cap-add"), CapDrop: c.StringSlice("cap-drop"), Privileged: c.Bool("privileged"),
		ReadOnly: c.Bool("read-only"), Tmpfs: c.StringSlice("tmpfs"), Volumes: c.StringSlice("volume"),
		Mounts: c.StringSlice("mount"), Ulimits: c.StringSlice("ulimit"), SecurityOpt: c.StringSlice("security-opt"),
		StopSignal: c.String("stop-signal"), Init: c.Bool("init"), Network: c.String("network"),
		Ports: c.StringSlice("publish"), PublishAll: c.Bool("publish-all"), AddHosts: c.StringSlice("add-host"),
		DNS: c.StringSlice("dns"), DNSSearch: c.StringSlice("dns-search"), DNSOptions: c.StringSlice("dns-option"),
		IP: c.String("ip"), Aliases: c.StringSlice("network-alias"), CPUs: c.Float64("cpus"), PidsLimit: c.Int64("pids-limit"),
		Remove: c.Bool("rm"),
	}
	if c.IsSet("entrypoint") {
		o.EntrypointSet = true
		o.Entrypoint = []string{c.String("entrypoint")}
	}
	if c.IsSet("stop-timeout") {
		t := c.Int("stop-timeout")
		o.StopTimeout = &t
	}
	if o.StopSignal != "" {
		if _, err := parseSignal(o.StopSignal); err != nil {
			return nil, usageError(c, "invalid --stop-signal: %v", err)
		}
	}
	for _, p := range o.Ports {
		if err := checkPublish(p); err != nil {
			return nil, usageError(c, "invalid -p %q: %v", p, err)
		}
	}
	if _, err := publishSpecs(o.Ports, false, nil); err != nil {
		return nil, usageError(c, "%v", err)
	}
	if v := c.String("memory"); v != "" {
		n, err := units.RAMInBytes(v)
		if err != nil {
			return nil, usageError(c, "invalid --memory %q: %v", v, err)
		}
		o.Memory = n
	}
	if v := c.String("shm-size"); v != "" {
		n, err := units.RAMInBytes(v)
		if err != nil || n <= 0 {
			return nil, usageError(c, "invalid --shm-size %q", v)
		}
		o.ShmSize = n
	}
	for _, f := range c.StringSlice("env-file") {
		fh, err := os.Open(f)
		if err != nil {
			return nil, Exit(ExitError, fmt.Sprintf("opening the env file: %v", err))
		}
		env, err := runner.ParseEnvFile(fh, f, os.LookupEnv)
		fh.Close()
		if err != nil {
			return nil, Exit(ExitError, err.Error())
		}
		o.Env = append(o.Env, env...)
	}
	for _, e := range c.StringSlice("env") {
		kv, ok, err := runner.ParseEnv(e, os.LookupEnv)
		if err != nil {
			return nil, usageError(c, "%v", err)
		}
		if ok {
			o.Env = append(o.Env, kv)
		}
	}
	if err := lifecycleOptions(c, o); err != nil {
		return nil, err
	}
	if labels := c.StringSlice("label"); len(labels) > 0 {
		o.Labels = map[string]string{}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if k == "" {
				return nil, usageError(c, "invalid --label %q: want KEY=VALUE", l)
			}
			o.Labels[k] = v
		}
	}
	return o, nil
}

// lifecycleOptions reads --restart, the --health-* flags and the log
// options.
func lifecycleOptions(c *cli.Context, o *runner.Options) error {
	o.Restart = c.String("restart")
	policy, err := runner.ParseRestartPolicy(o.Restart)
	if err != nil {
		return usageError(c, "%v", err)
	}
	if o.Remove && policy.Name != "no" {
		return usageError(c, "conflicting options: --restart %s and --rm (a container removed when it exits cannot be restarted)", o.Restart)
	}
	o.NoHealthcheck = c.Bool("no-healthcheck")
	h := &runner.Healthcheck{
		Interval: c.Duration("health-interval"), Timeout: c.Duration("health-timeout"),
		StartPeriod: c.Duration("health-start-period"), StartInterval: c.Duration("health-start-interval"),
		Retries: c.Int("health-retries"),
	}
	if cmd := c.String("health-cmd"); cmd != "" {
		h.Test = []string{"CMD-SHELL", cmd}
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start-period", h.StartPeriod}, {"start-interval", h.StartInterval}} {
		if f.d < 0 {
			return usageError(c, "--health-%s cannot be negative", f.name)
		}
		if f.d > 0 && f.d < time.Millisecond {
			return usageError(c, "--health-%s must be at least 1ms", f.name)
		}
	}
	if h.Retries < 0 {
		return usageError(c, "--health-retries cannot be negative")
	}
	set := len(h.Test) > 0 || h.Interval != 0 || h.Timeout != 0 || h.StartPeriod != 0 || h.StartInterval != 0 || h.Retries != 0
	if o.NoHealthcheck && set {
		return usageError(c, "conflicting options: --no-healthcheck conflicts with --health-* options")
	}
	if set {
		o.Health = h
	}
	o.LogDriver = c.String("log-driver")
	for _, kv := range c.StringSlice("log-opt") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageError(c, "invalid --log-opt %q: want KEY=VALUE", kv)
		}
		if o.LogOpts == nil {
			o.LogOpts = map[string]string{}
		}
		o.LogOpts[k] = v
	}
	if _, err := runner.ParseLogConfig(o.LogDriver, o.LogOpts); err != nil {
		return usageError(c, "%v", err)
	}
	return nil
}

// checkPublish validates a -p value with docker's syntax:
// [IP:][HOSTPORT[-END]:]CONTAINERPORT[-END][/tcp|udp|sctp].
func checkPublish(p string) error {
	spec, proto, _ := strings.Cut(p, "/")
	switch proto {
	case "", "tcp", "udp", "sctp":
	default:
		return fmt.Errorf("unknown protocol %q", proto)
	}
	parts := strings.Split(spec, ":")
	if strings.HasPrefix(spec, "[") { // [v6]:h:c
		if i := strings.Index(spec, "]:"); i > 0 {
			parts = append([]string{spec[1:i]}, strings.Split(spec[i+2:], ":")...)
		}
	}
	if len(parts) > 3 {
		return errors.New("too many colons")
	}
	ports := parts
	if len(parts) == 3 {
		ports = parts[1:]
	}
	for i, pr := range ports {
		if pr == "" && i == 0 && len(ports) == 2 {
			continue // ip::containerport: a random host port
		}
		lo, hi, isRange := strings.Cut(pr, "-")
		if err := checkPort(lo); err != nil {
			return err
		}
		if isRange {
			if err := checkPort(hi); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkPort(s string) error {
	n := 0
	if s == "" {
		return errors.New("empty port")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return fmt.Errorf("%q is not a port number", s)
		}
		n = n*10 + int(r-'0')
		if n > 65535 {
			return fmt.Errorf("port %s is out of range", s)
		}
	}
	if n == 0 {
		return fmt.Errorf("port %s is out of range", s)
	}
	return nil
}

// parseSignal accepts "TERM", "SIGTERM" or "15".
func parseSignal(s string) (unix.Signal, error) {
	u := strings.ToUpper(s)
	if n, err := fmt.Sscanf(u, "%d", new(int)); err == nil && n == 1 {
		var v int
		fmt.Sscanf(u, "%d", &v)
		if v <= 0 || v > 64 {
			return 0, fmt.Errorf("unknown signal %q", s)
		}
		return unix.Signal(v), nil
	}
	if !strings.HasPrefix(u, "SIG") {
		u = "SIG" + u
	}
	if sig := unix.SignalNum(u); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// newRuntime joins the namespace, opens the store and makes a runtime.
func newRuntime(c *cli.Context, s *store.Store, pull string) (*runner.Runtime, error) {
	rt := &runner.Runtime{Store: s, Rootless: userns.Rootless(), ScratchDir: userns.RuntimeDir()}
	// A detached container's monitor runs nook again for health checks
	// and the clean-up: with this store, whatever its environment.
	if self, err := os.Executable(); err == nil {
		so := storeOptions(c)
		rt.HelperArgs = []string{self, "--root", so.Root, "--runroot", so.RunRoot}
		if so.Driver != "" {
			rt.HelperArgs = append(rt.HelperArgs, "--storage-driver", so.Driver)
		}
	}
	if pid, ok := userns.HolderPID(); ok && rt.Rootless {
		rt.HolderPID = pid
	}
	na, err := networkAttacher(c)
	if err != nil {
		return nil, Exit(ExitError, fmt.Sprintf("opening the container networks: %v", err))
	}
	rt.Network = na
	if pull != "" {
		policy, err := pusher.ParsePolicy(pull)
		if err != nil {
			return nil, usageError(c, "%v", err)
		}
		rt.EnsureImage = func(ctx context.Context, ref string) (*store.Image, error) {
			img, err := s.Lookup(ref)
			if err == nil && policy != pusher.PullAlways && policy != pusher.PullNewer {
				return img, nil
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			if policy == pusher.PullNever {
				return nil, &runner.ImageNotFoundError{Ref: ref}
			}
			img, perr := pusher.EnsureImage(ctx, s, ref, policy, pusher.Options{Progress: c.App.ErrWriter})
			if perr != nil {
				if err != nil {
					return nil, fmt.Errorf("image %s not found locally, and pulling it failed: %w", ref, perr)
				}
				return nil, perr
			}
			return img, nil
		}
	}
	return rt, nil
}

// runError maps runner errors to docker's exit codes.
func runError(err error) error {
	var ec ExitCoder
	if errors.As(err, &ec) {
		return err
	}
	return Exit(ExitError, err.Error())
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a command in a new container",
		UsageText: "nook run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Description: `Creates a container from IMAGE and runs it in the foreground: this nook
process supervises it (there is no daemon), copies its output, forwards
signals (a second Ctrl-C or SIGTERM kills it) and exits with its exit code.
125 means nook failed, 126 that the command cannot be invoked, 127 that it
was not found.

Examples:
  nook run --rm busybox echo hello
  nook run --rm -it busybox sh
  nook run --rm -v "$PWD":/src:ro -w /src -e A=b busybox ls
  nook run --rm --network none --read-only --cap-drop ALL busybox id`,
		Flags:  append(containerFlags(), &cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run in the background and print the container ID"}),
		Action: runAction,
	}
}

func createCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a container without starting it",
		UsageText: "nook create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Description: `Examples:
  nook create --name web busybox httpd -f
  nook start -a web`,
		Flags: containerFlags(),
		Action: func(c *cli.Context) error {
			o, err := runOptions(c)
			if err != nil {
				return err
			}
			return withStore(c, func(s *store.Store) error {
				rt, err := newRuntime(c, s, c.String("pull"))
				if err != nil {
					return err
				}
				ctr, err := rt.Create(c.Context, o)
				if err != nil {
					return runError(err)
				}
				fmt.Fprintln(c.App.Writer, ctr.ID)
				return nil
			})
		},
	}
}

func runAction(c *cli.Context) error {
	o, err := runOptions(c)
	if err != nil {
		return err
	}
	if c.Bool("detach") {
		o.Detach = true
		return runDetached(c, o)
	}
	// Signals are captured before anything is created, so that a Ctrl-C
	// at any moment still removes what --rm would.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
	defer signal.Stop(sigs)
	return withStore(c, func(s *store.Store) error {
		rt, err := newRuntime(c, s, c.String("pull"))
		if err != nil {
			return err
		}
		ctr, err := rt.Create(c.Context, o)
		if err != nil {
			return runError(err)
		}
		code, runErr := rt.StartAttached(c.Context, ctr, attachIO(c, o), sigs)
		if o.Remove {
			if err := rt.Remove(c.Context, ctr, runner.RemoveOptions{Force: true, Volumes: true}); err != nil && runErr == nil {
				runErr = err
			}
		}
		if runErr != nil {
			return Exit(code, runErr.Error())
		}
		if code != 0 {
			return Exit(code, "")
		}
		return nil
	})
}

// runDetached creates the container and starts it under its monitor;
// it prints the container's ID once the command runs.
func runDetached(c *cli.Context, o *runner.Options) error {
	return withStore(c, func(s *store.Store) error {
		rt, err := newRuntime(c, s, c.String("pull"))
		if err != nil {
			return err
		}
		ctr, err := rt.Create(c.Context, o)
		if err != nil {
			return runError(err)
		}
		if err := rt.Start(c.Context, ctr); err != nil {
			if o.Remove {
				_ = rt.Remove(c.Context, ctr, runner.RemoveOptions{Force: true, Volumes: true})
			}
			return startError(err)
		}
		fmt.Fprintln(c.App.Writer, ctr.ID)
		return nil
	})
}

// startError maps a failed start to docker's exit codes (125, or 126 and
// 127 for a command that cannot be invoked or is not found).
func startError(err error) error {
	var ec ExitCoder
	if errors.As(err, &ec) {
		return err
	}
	return Exit(runner.StartErrorCode(err), err.Error())
}

// attachIO gives the container this process's streams; with -t on a
// terminal, the terminal itself (raw mode and window size need it).
func attachIO(c *cli.Context, o *runner.Options) runner.IO {
	io := runner.IO{Stdin: c.App.Reader, Stdout: c.App.Writer, Stderr: c.App.ErrWriter}
	if o.Tty {
		if f, ok := c.App.Reader.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			io.TermIn = f
		}
		if f, ok := c.App.Writer.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			io.TermOut = f
		}
	}
	return io
}
