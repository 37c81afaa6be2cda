package commands

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/store"
	"github.com/nook-containers/nook/userns"
)

// Info is what 'nook info' reports.
type Info struct {
	Rootless    bool
	HostUID     int
	HostGID     int
	UIDMap      []userns.IDRange
	GIDMap      []userns.IDRange
	Warning     string `json:",omitempty"`
	HolderPID   int    `json:",omitempty"`
	RuntimeDir  string
	Store       StoreInfo
	Helpers     map[string]string
	CgroupLimit string
}

// StoreInfo describes the store.
type StoreInfo struct {
	Root         string
	RunRoot      string
	Driver       string
	DriverStatus map[string]string
	Images       int
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:      "info",
		Usage:     "show who nook runs as, the id mapping, the store and the helpers found",
		UsageText: "nook info [--format TEMPLATE]",
		Description: `Examples:
  nook info
  nook info --format '{{.Store.Driver}}'
  nook info --format json`,
		Flags: []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			if err := needsNamespace(c); err != nil {
				return err
			}
			in := Info{
				Rootless:   userns.Rootless(),
				HostUID:    userns.HostUID(),
				HostGID:    userns.HostGID(),
				RuntimeDir: userns.RuntimeDir(),
				Warning:    userns.MappingAdvice(),
				Helpers:    map[string]string{},
			}
			in.UIDMap, _ = userns.ReadIDMap("/proc/self/uid_map")
			in.GIDMap, _ = userns.ReadIDMap("/proc/self/gid_map")
			if pid, ok := userns.HolderPID(); ok && in.Rootless {
				in.HolderPID = pid
			}
			for _, h := range []string{"newuidmap", "newgidmap", "slirp4netns", "nsenter", "ip"} {
				if p, err := exec.LookPath(h); err == nil {
					in.Helpers[h] = p
				} else {
					in.Helpers[h] = "not found"
				}
			}
			in.CgroupLimit = cgroupSummary()
			err := withStore(c, func(s *store.Store) error {
				in.Store = StoreInfo{Root: s.Root(), RunRoot: s.RunRoot(), Driver: s.Driver(), DriverStatus: map[string]string{}}
				for _, kv := range s.DriverStatus() {
					in.Store.DriverStatus[kv[0]] = kv[1]
				}
				imgs, err := s.Images()
				in.Store.Images = len(imgs)
				return err
			})
			if err != nil {
				return err
			}
			if f := c.String("format"); f != "" {
				return printFormatted(c, f, []any{in})
			}
			w := c.App.Writer
			mode := "rootful (real root)"
			if in.Rootless {
				mode = fmt.Sprintf("rootless (uid %d, gid %d)", in.HostUID, in.HostGID)
			}
			fmt.Fprintf(w, "Mode:         %s\n", mode)
			if in.Rootless {
				fmt.Fprintf(w, "Holder pid:   %d\n", in.HolderPID)
			}
			fmt.Fprintf(w, "UID map:      %s\n", fmtMap(in.UIDMap))
			fmt.Fprintf(w, "GID map:      %s\n", fmtMap(in.GIDMap))
			if in.Warning != "" {
				fmt.Fprintf(w, "Warning:      %s\n", in.Warning)
			}
			fmt.Fprintf(w, "Runtime dir:  %s\n", in.RuntimeDir)
			fmt.Fprintf(w, "Store:\n  Root:       %s\n  Run root:   %s\n  Driver:     %s\n  Images:     %d\n",
				in.Store.Root, in.Store.RunRoot, in.Store.Driver, in.Store.Images)
			for k, v := range in.Store.DriverStatus {
				fmt.Fprintf(w, "  %s: %s\n", k, v)
			}
			fmt.Fprintln(w, "Helpers:")
			for _, h := range []string{"newuidmap", "newgidmap", "slirp4netns", "nsenter", "ip"} {
				fmt.Fprintf(w, "  %-12s %s\n", h+":", in.Helpers[h])
			}
			fmt.Fprintf(w, "Resource limits: %s\n", in.CgroupLimit)
			return nil
		},
	}
}

func fmtMap(m []userns.IDRange) string {
	var parts []string
	for _, r := range m {
		parts = append(parts, fmt.Sprintf("%d:%d:%d", r.Inside, r.Outside, r.Size))
	}
	return strings.Join(parts, " ")
}

// cgroupSummary says whether --memory/--cpus/--pids-limit can work.
func cgroupSummary() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		return "unavailable: this machine uses cgroup v1 (or hybrid); rootless limits need cgroup v2 with a delegated subtree"
	}
	return "cgroup v2"
}
