package runner

import (
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Inspect is docker's container inspect document (the fields docker
// scripts read), plus OCIConfig: the runtime-spec document the container
// runs with.
type Inspect struct {
	Id              string             //nolint:revive // docker's name: templates say {{.Id}}
	Created         time.Time          `json:"Created"`
	Path            string             `json:"Path"`
	Args            []string           `json:"Args"`
	State           InspectState       `json:"State"`
	Image           string             `json:"Image"`
	ResolvConfPath  string             `json:"ResolvConfPath"`
	HostnamePath    string             `json:"HostnamePath"`
	HostsPath       string             `json:"HostsPath"`
	LogPath         string             `json:"LogPath"`
	Name            string             `json:"Name"`
	RestartCount    int                `json:"RestartCount"`
	Driver          string             `json:"Driver"`
	Platform        string             `json:"Platform"`
	HostConfig      InspectHostConfig  `json:"HostConfig"`
	GraphDriver     InspectGraphDriver `json:"GraphDriver"`
	Mounts          []InspectMount     `json:"Mounts"`
	Config          InspectConfig      `json:"Config"`
	NetworkSettings InspectNetwork     `json:"NetworkSettings"`
	OCIConfig       *specs.Spec        `json:"OCIConfig,omitempty"`
}

// InspectState is docker's State section.
type InspectState struct {
	Status     string  `json:"Status"`
	Running    bool    `json:"Running"`
	Paused     bool    `json:"Paused"`
	Restarting bool    `json:"Restarting"`
	OOMKilled  bool    `json:"OOMKilled"`
	Dead       bool    `json:"Dead"`
	Pid        int     `json:"Pid"`
	ExitCode   int     `json:"ExitCode"`
	Error      string  `json:"Error"`
	StartedAt  string  `json:"StartedAt"`
	FinishedAt string  `json:"FinishedAt"`
	Health     *Health `json:"Health,omitempty"`
}

// InspectHostConfig is the part of docker's HostConfig nook has.
type InspectHostConfig struct {
	Binds           []string                 `json:"Binds"`
	NetworkMode     string                   `json:"NetworkMode"`
	PortBindings    map[string][]PortBinding `json:"PortBindings"`
	AutoRemove      bool                     `json:"AutoRemove"`
	CapAdd          []string                 `json:"CapAdd"`
	CapDrop         []string                 `json:"CapDrop"`
	DNS             []string                 `json:"Dns"`
	ExtraHosts      []string                 `json:"ExtraHosts"`
	GroupAdd        []string                 `json:"GroupAdd"`
	Privileged      bool                     `json:"Privileged"`
	PublishAllPorts bool                     `json:"PublishAllPorts"`
	ReadonlyRootfs  bool                     `json:"ReadonlyRootfs"`
	SecurityOpt     []string                 `json:"SecurityOpt"`
	Tmpfs           map[string]string        `json:"Tmpfs"`
	ShmSize         int64                    `json:"ShmSize"`
	Memory          int64                    `json:"Memory"`
	NanoCpus        int64                    `json:"NanoCpus"`
	PidsLimit       int64                    `json:"PidsLimit"`
	Init            bool                     `json:"Init"`
	Ulimits         []string                 `json:"Ulimits"`
	RestartPolicy   RestartPolicy            `json:"RestartPolicy"`
	LogConfig       LogConfig                `json:"LogConfig"`
}

// InspectGraphDriver says where the container's layer is.
type InspectGraphDriver struct {
	Name string            `json:"Name"`
	Data map[string]string `json:"Data"`
}

// InspectMount is one entry of docker's Mounts.
type InspectMount struct {
	Type        string `json:"Type"`
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation"`
}

// InspectConfig is docker's Config section.
type InspectConfig struct {
	Hostname    string            `json:"Hostname"`
	Domainname  string            `json:"Domainname"`
	User        string            `json:"User"`
	AttachStdin bool              `json:"AttachStdin"`
	Tty         bool              `json:"Tty"`
	OpenStdin   bool              `json:"OpenStdin"`
	Env         []string          `json:"Env"`
	Cmd         []string          `json:"Cmd"`
	Image       string            `json:"Image"`
	WorkingDir  string            `json:"WorkingDir"`
	Entrypoint  []string          `json:"Entrypoint"`
	Labels      map[string]string `json:"Labels"`
	StopSignal  string            `json:"StopSignal"`
	StopTimeout *int              `json:"StopTimeout,omitempty"`
	Healthcheck *Healthcheck      `json:"Healthcheck,omitempty"`
}

// InspectNetwork is docker's NetworkSettings, flattened to one network.
type InspectNetwork struct {
	IPAddress  string                   `json:"IPAddress"`
	Gateway    string                   `json:"Gateway"`
	MacAddress string                   `json:"MacAddress"`
	Ports      map[string][]PortBinding `json:"Ports"`
	SandboxKey string                   `json:"SandboxKey"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// InspectDoc builds a container's inspect document.
func (r *Runtime) InspectDoc(c *Container) *Inspect {
	s, _ := c.Spec()
	o := c.Options
	d := &Inspect{
		Id: c.ID, Created: c.Created, Image: "sha256:" + c.ImageID, Name: "/" + c.Name,
		Driver: r.Store.Driver(), Platform: "linux",
		ResolvConfPath: path.Join(c.Dir, "resolv.conf"), HostnamePath: path.Join(c.Dir, "hostname"), HostsPath: path.Join(c.Dir, "hosts"),
		State: InspectState{
			Status: c.State.Status, Running: c.State.Active(), Restarting: c.State.Status == StatusRestarting,
			Pid: c.State.Pid, ExitCode: c.State.ExitCode, Error: c.State.Error,
			StartedAt: rfc3339(c.State.StartedAt), FinishedAt: rfc3339(c.State.FinishedAt), Health: c.State.Health,
		},
		RestartCount: c.State.RestartCount,
		HostConfig: InspectHostConfig{
			NetworkMode: networkMode(o.Network), AutoRemove: o.Remove, CapAdd: o.CapAdd, CapDrop: o.CapDrop, DNS: o.DNS,
			ExtraHosts: o.AddHosts, GroupAdd: o.GroupAdd, Privileged: o.Privileged, PublishAllPorts: o.PublishAll,
			ReadonlyRootfs: o.ReadOnly, SecurityOpt: o.SecurityOpt, ShmSize: shmSize(o.ShmSize), Memory: o.Memory,
			NanoCpus: int64(o.CPUs * 1e9), PidsLimit: o.PidsLimit, Init: o.Init, Ulimits: o.Ulimits,
			Tmpfs: map[string]string{}, PortBindings: map[string][]PortBinding{},
		},
		GraphDriver: InspectGraphDriver{Name: r.Store.Driver(), Data: map[string]string{"MergedDir": c.Rootfs}},
		Config: InspectConfig{
			Hostname: "", Domainname: o.Domainname, User: o.User, AttachStdin: o.Interactive, Tty: o.Tty,
			OpenStdin: o.Interactive, Image: c.Image, WorkingDir: "", Labels: c.Labels, StopSignal: c.StopSignal,
			StopTimeout: o.StopTimeout, Entrypoint: nil,
		},
		OCIConfig: s,
	}
	d.HostConfig.RestartPolicy, _ = ParseRestartPolicy(o.Restart)
	d.HostConfig.LogConfig, _ = ParseLogConfig(o.LogDriver, o.LogOpts)
	if d.HostConfig.LogConfig.Type != "none" {
		d.LogPath = c.LogPath()
	}
	d.Config.Healthcheck = c.Healthcheck
	if len(c.Args) > 0 {
		d.Path, d.Args = c.Args[0], c.Args[1:]
	}
	if s != nil {
		d.Config.Hostname = s.Hostname
		d.Config.WorkingDir = s.Process.Cwd
		d.Config.Env = s.Process.Env
		for _, m := range s.Mounts {
			if m.Destination == "/etc/hosts" || m.Destination == "/etc/hostname" || m.Destination == "/etc/resolv.conf" {
				continue
			}
			if m.Type == "tmpfs" && (strings.HasPrefix(m.Destination, "/dev") || m.Destination == "/proc") {
				continue
			}
			if m.Type == "tmpfs" {
				d.HostConfig.Tmpfs[m.Destination] = strings.Join(m.Options, ",")
			}
		}
	}
	d.Config.Cmd = c.Options.Cmd
	if o.EntrypointSet {
		d.Config.Entrypoint = o.Entrypoint
	}
	for _, v := range c.Volumes {
		im := InspectMount{Type: v.Type, Destination: v.Target, RW: !v.ReadOnly, Mode: "", Propagation: "rprivate"}
		if v.ReadOnly {
			im.Mode = "ro"
		}
		switch v.Type {
		case "bind":
			im.Source = v.Source
			d.HostConfig.Binds = append(d.HostConfig.Binds, v.Source+":"+v.Target)
		case "volume":
			im.Name = v.Source
			if s != nil {
				for _, m := range s.Mounts {
					if path.Clean(m.Destination) == path.Clean(v.Target) {
						im.Source = m.Source
						if v.Source == "" {
							im.Name = path.Base(path.Dir(m.Source))
						}
					}
				}
			}
		case "tmpfs":
			continue
		}
		d.Mounts = append(d.Mounts, im)
	}
	sort.Slice(d.Mounts, func(i, j int) bool { return d.Mounts[i].Destination < d.Mounts[j].Destination })
	if n := c.State.Network; n != nil {
		d.NetworkSettings.IPAddress, d.NetworkSettings.Gateway, d.NetworkSettings.MacAddress = n.IPAddress, n.Gateway, n.MacAddress
		d.NetworkSettings.Ports = n.Ports
	}
	if c.State.Running() {
		d.NetworkSettings.SandboxKey = "/proc/" + strconv.Itoa(c.State.Pid) + "/ns/net"
	}
	return d
}

func networkMode(n string) string {
	if n == "" || n == "default" {
		return "bridge"
	}
	return n
}

func shmSize(n int64) int64 {
	if n <= 0 {
		return DefaultShmSize
	}
	return n
}
