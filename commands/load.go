package commands

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/pusher"
	"github.com/nook-containers/nook/store"
)

func loadCommand() *cli.Command {
	return &cli.Command{
		Name:      "load",
		Usage:     "store the images of an archive",
		UsageText: "nook load [OPTIONS]",
		Description: `Reads a docker-archive (docker save), an oci-archive or an OCI layout
directory; a tar may be gzip or zstd compressed. Without -i the archive comes
from standard input. Every layer's diff ID (and blob digest, where the archive
names one) is verified; paths leaving the archive and links out of it are
refused.

Examples:
  nook load -i app.tar
  nook load < app.tar.gz
  nook load -i app-layout/`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "read from `FILE` or an OCI layout directory"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no progress"},
		},
		Action: loadAction,
	}
}

func loadAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(c, "load takes no arguments: use -i FILE or standard input")
	}
	in := c.String("input")
	if in == "" {
		if f, ok := c.App.Reader.(*os.File); ok && writerIsTerminal(f) {
			return usageError(c, "refusing to read an archive from a terminal: use -i FILE or redirect the input")
		}
	} else {
		abs, err := filepath.Abs(in)
		if err != nil {
			return err
		}
		in = abs
	}
	return withStore(c, func(s *store.Store) error {
		imgs, err := pusher.Load(c.Context, s, in, c.App.Reader, pusher.Options{
			Progress: c.App.ErrWriter,
			Terminal: writerIsTerminal(c.App.ErrWriter),
			Quiet:    c.Bool("quiet"),
		})
		if err != nil {
			return err
		}
		for _, img := range imgs {
			if len(img.Names) == 0 {
				fmt.Fprintf(c.App.Writer, "Loaded image ID: sha256:%s\n", img.ID)
			}
			for _, n := range img.Names {
				fmt.Fprintf(c.App.Writer, "Loaded image: %s\n", store.FamiliarName(n))
			}
		}
		return nil
	})
}
