package commands

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
	"github.com/nook-containers/nook/userns"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write a container's file system as a tar archive",
		UsageText: "nook export [-o FILE] CONTAINER",
		Description: `Writes the container's whole file system (its changes over its image's
layers; not its volumes or bind mounts) as a tar archive, to standard output
or to FILE. 'nook import' makes an image of it again.

Examples:
  nook export web > web.tar
  nook export -o web.tar web`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to FILE instead of standard output"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "\"export\" requires exactly 1 argument: CONTAINER")
			}
			out := c.String("output")
			if out == "" {
				if f, ok := c.App.Writer.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return Exit(ExitError, "cowardly refusing to write a tar archive to a terminal: use -o FILE or redirect")
				}
			}
			return withStore(c, func(s *store.Store) error {
				rt := &runner.Runtime{Store: s, Rootless: userns.Rootless(), ScratchDir: userns.RuntimeDir()}
				ctr, err := rt.Lookup(c.Args().First())
				if err != nil {
					return runError(err)
				}
				if out == "" {
					return rt.Export(ctr, c.App.Writer)
				}
				// A file that appears whole or not at all.
				tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
				if err != nil {
					return fmt.Errorf("creating %s: %w", out, err)
				}
				defer os.Remove(tmp.Name())
				if err := rt.Export(ctr, tmp); err != nil {
					tmp.Close()
					return err
				}
				if err := tmp.Close(); err != nil {
					return fmt.Errorf("writing %s: %w", out, err)
				}
				if err := os.Chmod(tmp.Name(), 0o644); err != nil {
					return err
				}
				if err := os.Rename(tmp.Name(), out); err != nil {
					return fmt.Errorf("writing %s: %w", out, err)
				}
				return nil
			})
		},
	}
}
