package commands

import (
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/network"
	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
)

func portCommand() *cli.Command {
	return &cli.Command{
		Name:      "port",
		Usage:     "list a container's published ports",
		UsageText: "nook port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Description: `Prints "80/tcp -> 0.0.0.0:8080" for each published port of a running
container; with PRIVATE_PORT, only the host side of that port.

Examples:
  nook port web
  nook port web 80/tcp`,
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return usageError(c, "\"port\" requires 1 or 2 arguments: CONTAINER [PRIVATE_PORT[/PROTO]]")
			}
			return withStore(c, func(s *store.Store) error {
				rt := &runner.Runtime{Store: s}
				ctr, err := rt.Lookup(c.Args().First())
				if err != nil {
					return runError(err)
				}
				lines, err := network.PortLines(publishedPorts(ctr), c.Args().Get(1))
				if err != nil {
					return Exit(1, fmt.Sprintf("%v for %s", err, ctr.Name))
				}
				for _, l := range lines {
					fmt.Fprintln(c.App.Writer, l)
				}
				return nil
			})
		},
	}
}

// publishedPorts are a running container's published ports.
func publishedPorts(ctr *runner.Container) []network.PortMapping {
	n := ctr.State.Network
	if n == nil || !ctr.State.Running() {
		return nil
	}
	var out []network.PortMapping
	for key, bs := range n.Ports {
		var port int
		proto := "tcp"
		if _, err := fmt.Sscanf(key, "%d/%s", &port, &proto); err != nil {
			if _, err := fmt.Sscanf(key, "%d", &port); err != nil {
				continue
			}
		}
		for _, b := range bs {
			hp, err := strconv.Atoi(b.HostPort)
			if err != nil {
				continue
			}
			out = append(out, network.PortMapping{HostIP: b.HostIP, HostPort: uint16(hp), ContainerPort: uint16(port), Protocol: proto})
		}
	}
	return out
}
