package commands

import (
	"fmt"
	"sort"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
)

// PsRow is one line of 'nook ps' (docker's --format field names).
type PsRow struct {
	ID         string
	Image      string
	Command    string
	CreatedAt  string
	RunningFor string
	Status     string
	State      string
	Ports      string
	Names      string
	Labels     string
	Mounts     string
	Networks   string
	labels     map[string]string
	exitCode   int
}

// Label returns one label's value (docker's {{.Label "k"}}).
func (r PsRow) Label(k string) string { return r.labels[k] }

func psCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "list containers",
		UsageText: "nook ps [-a] [-q] [--no-trunc] [--filter KEY=VALUE] [--format TEMPLATE]",
		Description: `Lists running containers; -a lists all of them.

Filters: id, name, status (created, running, restarting, exited), label (KEY
or KEY=VALUE), ancestor (image), exited (exit code), health (starting,
healthy, unhealthy, none).

Examples:
  nook ps -a
  nook ps -aq --filter status=exited
  nook ps --format '{{.Names}} {{.Status}}'`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "show all containers (default: running ones)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only print IDs"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "do not truncate output"},
			&cli.BoolFlag{Name: "latest", Aliases: []string{"l"}, Usage: "show the latest created container"},
			&cli.StringSliceFlag{Name: "filter", Usage: "filter output: KEY=VALUE"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			filters, err := parseFilters(c, c.StringSlice("filter"), "id", "name", "status", "label", "ancestor", "exited", "health")
			if err != nil {
				return err
			}
			return withStore(c, func(s *store.Store) error {
				rt := &runner.Runtime{Store: s}
				cs, err := rt.List()
				if err != nil {
					return err
				}
				var rows []PsRow
				for _, ctr := range cs {
					if !c.Bool("all") && !ctr.State.Active() && len(filters) == 0 && !c.Bool("latest") {
						continue
					}
					if !matchFilters(ctr, filters) {
						continue
					}
					rows = append(rows, psRow(ctr, c.Bool("no-trunc")))
					if c.Bool("latest") {
						break
					}
				}
				if c.Bool("quiet") {
					for _, r := range rows {
						fmt.Fprintln(c.App.Writer, r.ID)
					}
					return nil
				}
				if f := c.String("format"); f != "" {
					items := make([]any, len(rows))
					for i := range rows {
						items[i] = rows[i]
					}
					return printFormatted(c, f, items)
				}
				t := newTable(c.App.Writer, "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
				for _, r := range rows {
					t.row(r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Ports, r.Names)
				}
				return t.flush()
			})
		},
	}
}

func parseFilters(c *cli.Context, fs []string, allowed ...string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, f := range fs {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, usageError(c, "invalid filter %q: want KEY=VALUE", f)
		}
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			return nil, usageError(c, "invalid filter %q: known keys are %s", k, strings.Join(allowed, ", "))
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}

// matchFilters: values of one key are alternatives, keys must all match.
func matchFilters(ctr *runner.Container, f map[string][]string) bool {
	for k, vals := range f {
		ok := false
		for _, v := range vals {
			switch k {
			case "id":
				ok = ok || strings.HasPrefix(ctr.ID, v)
			case "name":
				ok = ok || strings.Contains(ctr.Name, strings.TrimPrefix(v, "/"))
			case "status":
				ok = ok || ctr.State.Status == v
			case "label":
				ok = ok || labelMatches(ctr.Labels, v)
			case "ancestor":
				ok = ok || ctr.Image == v || strings.HasPrefix(ctr.ImageID, strings.TrimPrefix(v, "sha256:"))
			case "exited":
				ok = ok || ctr.State.Status == runner.StatusExited && fmt.Sprint(ctr.State.ExitCode) == v
			case "health":
				h := "none"
				if ctr.State.Health != nil {
					h = ctr.State.Health.Status
				}
				ok = ok || h == v
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func psRow(ctr *runner.Container, noTrunc bool) PsRow {
	id := ctr.ID
	cmd := strings.Join(ctr.Args, " ")
	if !noTrunc {
		id = store.ShortID(id)
		if len(cmd) > 20 {
			cmd = cmd[:19] + "…"
		}
	}
	var labels []string
	for k, v := range ctr.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	return PsRow{
		ID: id, Image: ctr.Image, Command: fmt.Sprintf("%q", cmd), CreatedAt: ctr.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: since(ctr.Created), Status: statusText(ctr), State: ctr.State.Status, Names: ctr.Name,
		Labels: strings.Join(labels, ","), Networks: networkName(ctr.Options.Network), Ports: portsText(ctr),
		labels: ctr.Labels, exitCode: ctr.State.ExitCode,
	}
}

func networkName(n string) string {
	if n == "" || n == "default" {
		return "bridge"
	}
	return n
}

func portsText(ctr *runner.Container) string {
	n := ctr.State.Network
	if n == nil || !ctr.State.Running() {
		return ""
	}
	var out []string
	for cport, bs := range n.Ports {
		for _, b := range bs {
			ip := b.HostIP
			if ip == "" {
				ip = "0.0.0.0"
			}
			out = append(out, fmt.Sprintf("%s:%s->%s", ip, b.HostPort, cport))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// statusText is docker's human status: "Up 5 minutes", "Exited (0) 2 hours ago".
func statusText(ctr *runner.Container) string {
	st := ctr.State
	switch st.Status {
	case runner.StatusRunning:
		up := "Up " + units.HumanDuration(time.Since(st.StartedAt))
		if st.Health != nil {
			switch st.Health.Status {
			case runner.HealthStarting:
				up += " (health: starting)"
			default:
				up += " (" + st.Health.Status + ")"
			}
		}
		return up
	case runner.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, units.HumanDuration(time.Since(st.FinishedAt)))
	case runner.StatusExited:
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(time.Since(st.FinishedAt)))
	case runner.StatusCreated:
		return "Created"
	}
	return st.Status
}

func rmCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "remove containers",
		UsageText: "nook rm [-f] [-v] CONTAINER [CONTAINER...]",
		Description: `Examples:
  nook rm web
  nook rm -f $(nook ps -aq)`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "kill and remove a running container"},
			&cli.BoolFlag{Name: "volumes", Aliases: []string{"v"}, Usage: "remove the container's anonymous volumes"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return usageError(c, "rm needs at least 1 argument")
			}
			// docker: rm -f of a missing container is fine.
			return forContainers(c, c.Bool("force"), func(rt *runner.Runtime, ref string, ctr *runner.Container) (string, error) {
				return ref, rt.Remove(c.Context, ctr, runner.RemoveOptions{Force: c.Bool("force"), Volumes: c.Bool("volumes")})
			})
		},
	}
}

// inspectContainers prints containers' inspect documents, or reports
// which refs are not containers (for the fall-through to images).
func inspectContainer(s *store.Store, ref string) (any, error) {
	rt := &runner.Runtime{Store: s}
	ctr, err := rt.Lookup(ref)
	if err != nil {
		return nil, err
	}
	return rt.InspectDoc(ctr), nil
}
