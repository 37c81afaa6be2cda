package commands

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/network"
	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
)

func networkCommand() *cli.Command {
	return &cli.Command{
		Name:  "network",
		Usage: "manage networks",
		Description: `Containers on the same user-defined network reach each other by name and
alias; the default network ("nook", also called "bridge") gives outbound access
only. Rootless, networks live inside your namespace (see 'nook info').

Examples:
  nook network create app
  nook run -d --name db --network app busybox httpd -f
  nook run --rm --network app busybox wget -qO- db
  nook network ls
  nook network rm app`,
		Subcommands: []*cli.Command{
			networkCreateCommand(),
			networkLsCommand(),
			networkInspectCommand(),
			networkRmCommand(),
			networkPruneCommand(),
			networkConnectCommand(),
			networkDisconnectCommand(),
		},
	}
}

// networkManager joins the namespace (the networks live in it, rootless)
// and opens the user's networks.
func networkManager(c *cli.Context) (*network.Manager, error) {
	if err := needsNamespace(c); err != nil {
		return nil, err
	}
	return network.New(network.Options{Warnings: c.App.ErrWriter})
}

func networkCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a network",
		ArgsUsage: "NETWORK",
		Description: `Creates a bridge network and prints its ID. Without --subnet it gets the next
free /24 from 10.89.0.0 up.

Examples:
  nook network create app
  nook network create --subnet 10.90.0.0/24 --gateway 10.90.0.254 app
  nook network create --internal --label env=test backend`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "driver", Aliases: []string{"d"}, Value: "bridge", Usage: "network driver (bridge)"},
			&cli.StringFlag{Name: "subnet", Usage: "subnet in CIDR form"},
			&cli.StringFlag{Name: "gateway", Usage: "gateway address (default: the subnet's first)"},
			&cli.StringFlag{Name: "ip-range", Usage: "give containers addresses from this CIDR only"},
			&cli.BoolFlag{Name: "internal", Usage: "no traffic to or from outside the network"},
			&cli.StringSliceFlag{Name: "label", Usage: "set a label: KEY=VALUE"},
			&cli.StringSliceFlag{Name: "opt", Aliases: []string{"o"}, Usage: "driver option: com.docker.network.driver.mtu=N, com.docker.network.bridge.name=NAME"},
			&cli.BoolFlag{Name: "ipv6", Usage: "enable IPv6 (not supported)"},
			&cli.BoolFlag{Name: "attachable", Usage: "accepted for docker compatibility"},
			&cli.BoolFlag{Name: "ignore", Usage: "do nothing if the network exists"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "\"nook network create\" requires exactly 1 argument")
			}
			if c.Bool("ipv6") {
				return usageError(c, "IPv6 networks are not supported")
			}
			labels, err := keyValues(c, "label", c.StringSlice("label"))
			if err != nil {
				return err
			}
			opts, err := keyValues(c, "opt", c.StringSlice("opt"))
			if err != nil {
				return err
			}
			for k := range opts {
				switch k {
				case "com.docker.network.driver.mtu", "mtu", "com.docker.network.bridge.name":
				default:
					return usageError(c, "unknown driver option %q: use com.docker.network.driver.mtu or com.docker.network.bridge.name", k)
				}
			}
			if v, ok := opts["mtu"]; ok {
				delete(opts, "mtu")
				opts["com.docker.network.driver.mtu"] = v
			}
			m, err := networkManager(c)
			if err != nil {
				return err
			}
			n, err := m.Create(network.CreateOptions{
				Name: c.Args().First(), Driver: c.String("driver"), Subnet: c.String("subnet"),
				Gateway: c.String("gateway"), IPRange: c.String("ip-range"), Internal: c.Bool("internal"),
				Labels: labels, Options: opts, IgnoreExisting: c.Bool("ignore"),
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, n.ID)
			return nil
		},
	}
}

func keyValues(c *cli.Context, flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, usageError(c, "invalid --%s %q: want KEY=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

// NetworkRow is one line of 'nook network ls' (docker's --format fields).
type NetworkRow struct {
	ID        string
	Name      string
	Driver    string
	Scope     string
	IPv6      bool
	Internal  bool
	Labels    string
	CreatedAt string
	Subnet    string
	labels    map[string]string
}

// Label returns one label's value (docker's {{.Label "k"}}).
func (r NetworkRow) Label(k string) string { return r.labels[k] }

func networkRow(n *network.Network, trunc bool) NetworkRow {
	id := n.ID
	if trunc {
		id = id[:12]
	}
	var ls []string
	for k, v := range n.Labels {
		ls = append(ls, k+"="+v)
	}
	sort.Strings(ls)
	return NetworkRow{ID: id, Name: n.Name, Driver: n.Driver, Scope: "local", Internal: n.Internal,
		Labels: strings.Join(ls, ","), CreatedAt: n.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		Subnet: n.Subnet, labels: n.Labels}
}

func networkLsCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list networks",
		Description: `Filters: name, id, label (KEY or KEY=VALUE), driver, type (builtin, custom).

Examples:
  nook network ls
  nook network ls -q --filter label=env=test
  nook network ls --format '{{.Name}} {{.Subnet}}'`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only print IDs"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "do not truncate IDs"},
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "filter output: KEY=VALUE"},
			// docker's -f is --filter here, so --format has no short name
			&cli.StringFlag{Name: "format", Usage: "format the output with a Go template, or 'json'"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError(c, "\"nook network ls\" accepts no arguments")
			}
			filters, err := parseFilters(c, c.StringSlice("filter"), "name", "id", "label", "driver", "type")
			if err != nil {
				return err
			}
			m, err := networkManager(c)
			if err != nil {
				return err
			}
			nets, err := m.List()
			if err != nil {
				return err
			}
			var rows []NetworkRow
			for _, n := range nets {
				if matchNetwork(n, filters) {
					rows = append(rows, networkRow(n, !c.Bool("no-trunc")))
				}
			}
			if c.Bool("quiet") {
				for _, r := range rows {
					fmt.Fprintln(c.App.Writer, r.ID)
				}
				return nil
			}
			if f := c.String("format"); f != "" && f != "table" {
				items := make([]any, len(rows))
				for i, r := range rows {
					items[i] = r
				}
				return printFormatted(c, f, items)
			}
			t := newTable(c.App.Writer, "NETWORK ID", "NAME", "DRIVER", "SCOPE")
			for _, r := range rows {
				t.row(r.ID, r.Name, r.Driver, r.Scope)
			}
			return t.flush()
		},
	}
}

// matchNetwork: values of one key are alternatives, keys must all match.
func matchNetwork(n *network.Network, f map[string][]string) bool {
	for k, vals := range f {
		ok := false
		for _, v := range vals {
			switch k {
			case "name":
				ok = ok || strings.Contains(n.Name, v) || (v == network.DockerDefault && n.Default())
			case "id":
				ok = ok || strings.HasPrefix(n.ID, v)
			case "driver":
				ok = ok || n.Driver == v
			case "type":
				ok = ok || (v == "builtin") == n.Default()
			case "label":
				ok = ok || labelMatches(n.Labels, v)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func networkInspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show networks in detail",
		ArgsUsage: "NETWORK...",
		Description: `Prints docker's network inspect document (a JSON array), or applies --format
to each network.

Examples:
  nook network inspect app
  nook network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' app`,
		Flags: []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError(c, "\"nook network inspect\" requires at least 1 argument")
			}
			m, err := networkManager(c)
			if err != nil {
				return err
			}
			var views []any
			var errs []error
			for _, ref := range c.Args().Slice() {
				n, err := m.Get(ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				views = append(views, n.View())
			}
			if f := c.String("format"); f != "" {
				if err := printFormatted(c, f, views); err != nil {
					return err
				}
			} else {
				if views == nil {
					views = []any{}
				}
				if err := printJSON(c.App.Writer, views); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}
}

func networkRmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Aliases:   []string{"remove"},
		Usage:     "remove networks",
		ArgsUsage: "NETWORK...",
		Description: `Removes networks that no running container uses.

Examples:
  nook network rm app backend`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not fail on networks that do not exist"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError(c, "\"nook network rm\" requires at least 1 argument")
			}
			m, err := networkManager(c)
			if err != nil {
				return err
			}
			removed, err := m.Remove(c.Context, c.Args().Slice()...)
			for _, r := range removed {
				fmt.Fprintln(c.App.Writer, r)
			}
			if err != nil && c.Bool("force") {
				err = dropNotFound(err)
			}
			return err
		},
	}
}

// dropNotFound removes "not found" errors from a joined error.
func dropNotFound(err error) error {
	var keep []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !errors.Is(e, network.ErrNotFound) {
				keep = append(keep, e)
			}
		}
		return errors.Join(keep...)
	}
	if errors.Is(err, network.ErrNotFound) {
		return nil
	}
	return err
}

func networkPruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "remove all unused networks",
		Description: `Removes every user-defined network that no running container uses.
Filters: label (KEY, KEY=VALUE), label! (the opposite), until (a duration or time).

Examples:
  nook network prune -f
  nook network prune -f --filter label=env=test --filter until=24h`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
			&cli.StringSliceFlag{Name: "filter", Usage: "filter: label=KEY[=VALUE], label!=KEY[=VALUE], until=DURATION"},
		},
		Action: func(c *cli.Context) error {
			var keep []func(*network.Network) bool
			for _, f := range c.StringSlice("filter") {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					return usageError(c, "invalid filter %q: want KEY=VALUE", f)
				}
				switch k {
				case "label", "label!":
					neg := k == "label!"
					keep = append(keep, func(n *network.Network) bool {
						return labelMatches(n.Labels, v) != neg
					})
				case "until":
					t, err := untilTime(v)
					if err != nil {
						return usageError(c, "invalid until filter %q: %v", v, err)
					}
					keep = append(keep, func(n *network.Network) bool { return n.Created.Before(t) })
				default:
					return usageError(c, "invalid filter %q: known keys are label, label!, until", k)
				}
			}
			if !c.Bool("force") && !confirm(c, "WARNING! This will remove all custom networks not used by at least one container.") {
				return nil
			}
			m, err := networkManager(c)
			if err != nil {
				return err
			}
			removed, err := m.Prune(c.Context, func(n *network.Network) bool {
				for _, k := range keep {
					if !k(n) {
						return false
					}
				}
				return true
			})
			if len(removed) > 0 {
				fmt.Fprintln(c.App.Writer, "Deleted Networks:")
				for _, r := range removed {
					fmt.Fprintln(c.App.Writer, r)
				}
			}
			return err
		},
	}
}

// untilTime reads docker's until= value: a duration before now, a Unix
// time or an RFC 3339 time.
func untilTime(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(s, 0), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("use a duration (24h), a Unix time or 2006-01-02T15:04:05")
}

// runningContainer finds a running container for network connect and
// disconnect.
func runningContainer(s *store.Store, ref string) (*runner.Container, error) {
	rt := &runner.Runtime{Store: s}
	ctr, err := rt.Lookup(ref)
	if err != nil {
		return nil, err
	}
	if !ctr.State.Running() || ctr.State.Pid <= 0 {
		return nil, fmt.Errorf("container %s is not running: nook connects and disconnects running containers; give --network when starting it", ctr.Name)
	}
	return ctr, nil
}

func networkConnectCommand() *cli.Command {
	return &cli.Command{
		Name:      "connect",
		Usage:     "connect a running container to a network",
		ArgsUsage: "NETWORK CONTAINER",
		Description: `Adds an interface on NETWORK to a running container; its peers there reach it
by name and by each --alias.

Examples:
  nook network connect --alias cache app redis1`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "alias", Usage: "add a name for the container on this network"},
			&cli.StringFlag{Name: "ip", Usage: "IPv4 address for the container on this network"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError(c, "\"nook network connect\" requires exactly 2 arguments")
			}
			netRef, ctrRef := c.Args().Get(0), c.Args().Get(1)
			return withStore(c, func(s *store.Store) error {
				ctr, err := runningContainer(s, ctrRef)
				if err != nil {
					return err
				}
				m, err := network.New(network.Options{Warnings: c.App.ErrWriter})
				if err != nil {
					return err
				}
				o := network.AttachOptions{ContainerID: ctr.ID, Name: ctr.Name,
					NetNSPath: fmt.Sprintf("/proc/%d/ns/net", ctr.State.Pid),
					Networks:  []string{netRef}, Aliases: c.StringSlice("alias")}
				if ip := c.String("ip"); ip != "" {
					o.StaticIPs = map[string]string{}
					n, err := m.Get(netRef)
					if err != nil {
						return err
					}
					o.StaticIPs[n.Name] = ip
				}
				_, err = m.Connect(c.Context, o)
				return err
			})
		},
	}
}

func networkDisconnectCommand() *cli.Command {
	return &cli.Command{
		Name:      "disconnect",
		Usage:     "disconnect a running container from a network",
		ArgsUsage: "NETWORK CONTAINER",
		Description: `Examples:
  nook network disconnect app redis1`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "accepted for docker compatibility"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError(c, "\"nook network disconnect\" requires exactly 2 arguments")
			}
			netRef, ctrRef := c.Args().Get(0), c.Args().Get(1)
			return withStore(c, func(s *store.Store) error {
				rt := &runner.Runtime{Store: s}
				ctr, err := rt.Lookup(ctrRef)
				if err != nil {
					return err
				}
				m, err := network.New(network.Options{Warnings: c.App.ErrWriter})
				if err != nil {
					return err
				}
				return m.Disconnect(c.Context, ctr.ID, netRef)
			})
		},
	}
}

// netAttacher connects the runner's containers through package network
// (runner.NetworkAttacher).
type netAttacher struct{ m *network.Manager }

// networkAttacher is the runner's network, for newRuntime.
func networkAttacher(c *cli.Context) (runner.NetworkAttacher, error) {
	m, err := network.New(network.Options{Warnings: c.App.ErrWriter})
	if err != nil {
		return nil, err
	}
	return netAttacher{m}, nil
}

// publishSpecs turns -p values and -P into mappings (docker's parser);
// call it while validating run's flags, before anything is created.
func publishSpecs(ports []string, all bool, exposed []string) ([]network.PortMapping, error) {
	ps, err := network.ParsePublish(ports)
	if err != nil {
		return nil, err
	}
	if all {
		return network.PublishAll(ps, exposed)
	}
	return ps, nil
}

func (a netAttacher) Attach(ctx context.Context, id, netnsPath string, o runner.NetworkOptions) (*runner.NetworkResult, error) {
	ports, err := publishSpecs(o.Ports, o.PublishAll, o.Exposed)
	if err != nil {
		return nil, err
	}
	var nets []string
	if o.Network != "" && o.Network != "default" {
		nets = []string{o.Network}
	}
	var static map[string]string
	if o.IP != "" {
		if net.ParseIP(o.IP).To4() == nil {
			return nil, fmt.Errorf("invalid --ip %q: give an IPv4 address", o.IP)
		}
		name := o.Network
		if len(nets) == 0 {
			name = network.DefaultNetwork
		}
		static = map[string]string{name: o.IP}
	}
	res, err := a.m.Attach(ctx, network.AttachOptions{
		ContainerID: id, Name: o.Name, NetNSPath: netnsPath, Networks: nets, Aliases: o.Aliases,
		Hostname: o.Hostname, Domainname: o.Domainname, Ports: ports, DNS: o.DNS, DNSSearch: o.DNSSearch,
		DNSOptions: o.DNSOptions, StaticIPs: static, AddHosts: o.AddHosts,
		HostsPath: o.HostsPath, ResolvConfPath: o.ResolvConfPath, HostnamePath: o.HostnamePath,
	})
	if err != nil {
		return nil, err
	}
	out := &runner.NetworkResult{IPAddress: res.IP(), Gateway: res.Gateway(), MacAddress: res.MAC()}
	if len(res.Ports) > 0 {
		out.Ports = map[string][]runner.PortBinding{}
		for _, p := range res.Ports {
			ip := p.HostIP
			if ip == "" {
				ip = "0.0.0.0"
			}
			k := p.ContainerPortKey()
			out.Ports[k] = append(out.Ports[k], runner.PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(p.HostPort))})
		}
	}
	return out, nil
}

func (a netAttacher) Detach(ctx context.Context, id string, _ runner.NetworkOptions) error {
	return a.m.Detach(ctx, id)
}
