package runner

import (
	"context"
	"io"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Options is everything `nook run` / `nook create` accept, after the
// command line has been parsed (values are still in docker's string forms
// where docker's rules give them meaning, e.g. -v and --mount).
type Options struct {
	Name  string // --name; empty: a generated one
	Image string // image reference

	// Entrypoint overrides the image's ENTRYPOINT when non-nil; as in
	// docker, overriding it also drops the image's CMD. A single empty
	// string clears the entrypoint.
	Entrypoint []string
	// EntrypointSet says --entrypoint was given (Entrypoint may be [""]).
	EntrypointSet bool
	Cmd           []string // arguments after the image; empty: the image's CMD

	Env        []string // -e, resolved to KEY=VALUE (env files first, then -e)
	WorkingDir string   // -w
	User       string   // -u user[:group]
	GroupAdd   []string // --group-add
	Hostname   string   // -h
	Domainname string   // --domainname

	Tty         bool // -t
	Interactive bool // -i

	CapAdd      []string // --cap-add (CAP_ prefix optional, ALL allowed)
	CapDrop     []string // --cap-drop
	Privileged  bool
	ReadOnly    bool     // --read-only
	Tmpfs       []string // --tmpfs /path[:options]
	Volumes     []string // -v [src:]dst[:opts]
	Mounts      []string // --mount type=...,...
	ShmSize     int64    // --shm-size in bytes; 0: 64 MiB
	Ulimits     []string // --ulimit name=soft[:hard]
	SecurityOpt []string // --security-opt
	Labels      map[string]string
	StopSignal  string // --stop-signal
	StopTimeout *int   // --stop-timeout seconds
	Init        bool   // --init
	Network     string // --network: "" or "bridge" (default), "none", "host", or a network name
	Ports       []string
	PublishAll  bool
	AddHosts    []string
	DNS         []string
	DNSSearch   []string // --dns-search
	DNSOptions  []string // --dns-option
	IP          string   // --ip: a fixed address on the container's network
	Aliases     []string // --network-alias

	Memory    int64   // --memory bytes
	CPUs      float64 // --cpus
	PidsLimit int64   // --pids-limit

	Remove bool // --rm
	Detach bool // -d

	// Restart is --restart: "no" (or ""), "always", "unless-stopped" or
	// "on-failure[:N]" (see ParseRestartPolicy).
	Restart string
	// Health holds the --health-* flags that were set (zero values: the
	// image's); NoHealthcheck is --no-healthcheck.
	Health        *Healthcheck
	NoHealthcheck bool
	// LogDriver is --log-driver: "json-file" (or "") or "none"; LogOpts
	// are --log-opt max-size and max-file.
	LogDriver string
	LogOpts   map[string]string
}

// NetworkAttacher connects a container's network namespace to a network.
// The network library implements it; runner calls Attach after the
// container's namespaces exist and before its command starts, and Detach
// when the container stops. Implementations must be safe for concurrent
// use by several processes.
type NetworkAttacher interface {
	// Attach configures the network namespace at netnsPath (a path such as
	// /proc/PID/ns/net) for container id.
	Attach(ctx context.Context, id, netnsPath string, opts NetworkOptions) (*NetworkResult, error)
	// Detach releases what Attach took (addresses, ports, veths). It is
	// called also after a failed start and must tolerate a namespace that
	// no longer exists.
	Detach(ctx context.Context, id string, opts NetworkOptions) error
}

// NetworkOptions is what a container asks of its network.
type NetworkOptions struct {
	Network    string   // network name ("bridge" for the default)
	Name       string   // container name, for peer /etc/hosts entries
	Hostname   string   // the container's hostname
	Aliases    []string // extra DNS names
	Ports      []string // -p specs, as typed
	PublishAll bool     // -P
	Exposed    []string // the image's and --expose ports ("80/tcp")
	AddHosts   []string // --add-host host:ip
	DNS        []string // --dns
	DNSSearch  []string // --dns-search
	DNSOptions []string // --dns-option
	Domainname string   // --domainname
	IP         string   // --ip
	// The container's /etc/hosts, /etc/resolv.conf and /etc/hostname on
	// the host (already bind-mounted): the attacher rewrites them in place.
	HostsPath, ResolvConfPath, HostnamePath string
}

// NetworkResult is what the network gives a container.
type NetworkResult struct {
	IPAddress  string
	Gateway    string
	MacAddress string
	Ports      map[string][]PortBinding // "80/tcp" -> host bindings
}

// PortBinding is one published port.
type PortBinding struct {
	HostIP   string
	HostPort string
}

// IO is the standard streams of a foreground container.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// StdinFile and StdoutFile are the terminal, when -t is used on one
	// (raw mode and window size need the file).
	TermIn, TermOut interface{ Fd() uintptr }
}

// ExitStatus is how a container's command ended.
type ExitStatus struct {
	Code     int
	Signal   string // set when killed by a signal
	Started  time.Time
	Finished time.Time
}

// specAnnotations used by the executor.
const (
	annotationInit = "io.nook.init" // "true": nook reaps zombies as pid 1
)

// initConfig is what the container's init receives on its config pipe.
type initConfig struct {
	Spec   *specs.Spec `json:"spec"`
	Rootfs string      `json:"rootfs"`
	// Rootless: no mknod, sysfs may need a bind, devpts gid may be unmapped.
	Rootless bool `json:"rootless"`
	// HostNetwork: the container shares the invoker's network namespace.
	HostNetwork bool `json:"hostNetwork"`
	// ConsoleSocket: the init sends the pty master over fd 5.
	Console bool `json:"console"`
	// JoinNetNS: the init enters the network namespace at fd 6.
	JoinNetNS bool `json:"joinNetNS"`
}
