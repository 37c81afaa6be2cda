package commands

import (
	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
)

func renameCommand() *cli.Command {
	return &cli.Command{
		Name:      "rename",
		Usage:     "rename a container",
		UsageText: "nook rename CONTAINER NEW_NAME",
		Description: `Examples:
  nook rename eager_curie web`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError(c, "\"rename\" requires exactly 2 arguments: CONTAINER NEW_NAME")
			}
			return withStore(c, func(s *store.Store) error {
				rt := &runner.Runtime{Store: s}
				if err := rt.Rename(c.Args().Get(0), c.Args().Get(1)); err != nil {
					return runError(err)
				}
				return nil
			})
		},
	}
}
