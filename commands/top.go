package commands

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
)

func topCommand() *cli.Command {
	return &cli.Command{
		Name:      "top",
		Usage:     "show the processes of a running container",
		UsageText: "nook top CONTAINER [ps OPTIONS]",
		Description: `Runs the host's ps (default: ps -ef) and shows the rows of the container's
processes, with their host pids, as docker top does.

Examples:
  nook top web
  nook top web -o pid,user,args`,
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				return cli.ShowCommandHelp(c, "top")
			}
			if len(args) < 1 {
				return usageError(c, "\"top\" requires at least 1 argument: CONTAINER [ps OPTIONS]")
			}
			return withStore(c, func(s *store.Store) error {
				rt := &runner.Runtime{Store: s}
				ctr, err := rt.Lookup(args[0])
				if err != nil {
					return runError(err)
				}
				// docker joins the options and splits them at spaces.
				var psArgs []string
				if len(args) > 1 {
					psArgs = strings.Fields(strings.Join(args[1:], " "))
				}
				res, err := rt.Top(ctr, psArgs)
				if err != nil {
					return runError(err)
				}
				t := newTable(c.App.Writer, res.Titles...)
				for _, p := range res.Processes {
					t.row(p...)
				}
				return t.flush()
			})
		},
	}
}
