package commands

import (
	"fmt"

	"github.com/distribution/reference"
	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
)

func commitCommand() *cli.Command {
	return &cli.Command{
		Name:      "commit",
		Usage:     "make an image from a container's changes",
		UsageText: "nook commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Description: `Stores the container's changes as a new layer over its image's layers and
records an image whose configuration is the image's with what the container
was run with (command, entrypoint, environment, working directory, user,
ports, labels), then each --change. Works on running and stopped containers;
--pause stops a running one's processes while its changes are read.

Examples:
  nook commit web web:snapshot
  nook commit -m "add config" -a "Ann <ann@example.com>" web
  nook commit -c 'CMD ["httpd", "-f"]' -c 'EXPOSE 80' web web:2`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "author", Aliases: []string{"a"}, Usage: "author (\"Ann <ann@example.com>\")"},
			&cli.StringSliceFlag{Name: "change", Aliases: []string{"c"}, Usage: "apply a Dockerfile instruction to the image's configuration"},
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "commit message (the history entry's comment)"},
			&cli.BoolFlag{Name: "pause", Aliases: []string{"p"}, Usage: "pause a running container during the commit"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return usageError(c, "\"commit\" requires 1 or 2 arguments: CONTAINER [REPOSITORY[:TAG]]")
			}
			o := runner.CommitOptions{Message: c.String("message"), Author: c.String("author"), Changes: c.StringSlice("change"), Pause: c.Bool("pause")}
			if c.NArg() == 2 {
				named, err := store.NormalizeName(c.Args().Get(1))
				if err != nil {
					return usageError(c, "%v", err)
				}
				if _, ok := named.(reference.Digested); ok {
					return usageError(c, "cannot commit to a digest reference %q", c.Args().Get(1))
				}
				o.Names = []string{named.String()}
			}
			return withStore(c, func(s *store.Store) error {
				rt := &runner.Runtime{Store: s}
				ctr, err := rt.Lookup(c.Args().First())
				if err != nil {
					return runError(err)
				}
				img, err := rt.Commit(c.Context, ctr, o)
				if err != nil {
					return runError(err)
				}
				fmt.Fprintln(c.App.Writer, "sha256:"+img.ID)
				return nil
			})
		},
	}
}
