package commands

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/pusher"
	"github.com/nook-containers/nook/store"
)

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "upload an image to a registry",
		UsageText: "nook push [OPTIONS] IMAGE [DESTINATION]",
		Description: `Pushes IMAGE to DESTINATION (default: IMAGE's own name). Layers are
compressed once, as they are uploaded, and the compressed digest is kept with
the layer: pushing the same layer again (to any registry) compresses nothing.
Blobs the registry already has are skipped; blobs in another repository of the
same registry are mounted. A pulled image whose blobs are all in place is
pushed with its manifest unchanged (the same digest).

Examples:
  nook push localhost:5000/team/app:1
  nook push app:1 localhost:5000/team/app:1 --digestfile d.txt
  nook push --compression-format zstd app:1 registry.example.com/app:1`,
		Flags: append(registryFlags(),
			&cli.StringFlag{Name: "digestfile", Usage: "write the pushed manifest's digest to `FILE`"},
			&cli.StringFlag{Name: "compression-format", Usage: "layer compression: gzip (default) or zstd"},
			&cli.IntFlag{Name: "compression-level", Usage: "gzip 1-9 or zstd 1-4 (default: the fastest)"},
		),
		Action: pushAction,
	}
}

func pushAction(c *cli.Context) error {
	args, err := positionalArgs(c)
	if err != nil {
		return err
	}
	if len(args) < 1 || len(args) > 2 {
		return usageError(c, "push needs an IMAGE and an optional DESTINATION")
	}
	o, err := registryOptions(c)
	if err != nil {
		return err
	}
	o.Compression = c.String("compression-format")
	o.CompressionLevel = c.Int("compression-level")
	switch o.Compression {
	case "", pusher.Gzip, pusher.Zstd:
	default:
		return usageError(c, "invalid --compression-format %q: use gzip or zstd", o.Compression)
	}
	return withStore(c, func(s *store.Store) error {
		dest := ""
		if len(args) == 2 {
			dest = args[1]
		}
		res, err := pusher.Push(c.Context, s, args[0], dest, o)
		if err != nil {
			return err
		}
		if f := c.String("digestfile"); f != "" {
			if err := os.WriteFile(f, []byte(res.Digest.String()), 0o644); err != nil {
				return fmt.Errorf("writing the digest file: %w", err)
			}
		}
		return nil
	})
}
