package commands

import (
	"fmt"

	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/pusher"
	"github.com/nook-containers/nook/store"
)

func saveCommand() *cli.Command {
	return &cli.Command{
		Name:      "save",
		Usage:     "write images to an archive",
		UsageText: "nook save [OPTIONS] IMAGE...",
		Description: `Writes a docker-archive (what docker save writes and docker load, podman load
and nook load read), an oci-archive (an OCI layout in a tar) or an oci-dir (an
OCI layout directory). Layers are written uncompressed. Without -o the archive
goes to standard output, unless that is a terminal.

Examples:
  nook save -o app.tar app:1 other:2
  nook save --format oci-archive -o app.oci.tar app:1
  nook save --format oci-dir -o app-layout app:1
  nook save app:1 | gzip > app.tar.gz`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (a directory for oci-dir)"},
			&cli.StringFlag{Name: "format", Value: pusher.DockerArchive, Usage: "docker-archive, oci-archive or oci-dir"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing (accepted for podman compatibility)"},
		},
		Action: saveAction,
	}
}

func saveAction(c *cli.Context) error {
	args, err := positionalArgs(c)
	if err != nil {
		return err
	}
	if len(args) < 1 {
		return usageError(c, "save needs at least one image")
	}
	format, out := c.String("format"), c.String("output")
	switch format {
	case pusher.DockerArchive, pusher.OCIArchive:
	case pusher.OCIDir:
		if out == "" {
			return usageError(c, "--format oci-dir needs -o DIRECTORY")
		}
	default:
		return usageError(c, "invalid --format %q: use docker-archive, oci-archive or oci-dir", format)
	}
	if out == "" && writerIsTerminal(c.App.Writer) {
		return usageError(c, "refusing to write an archive to a terminal: use -o FILE or redirect the output")
	}
	if out != "" {
		abs, err := filepath.Abs(out)
		if err != nil {
			return err
		}
		out = abs
	}
	return withStore(c, func(s *store.Store) error {
		o := pusher.SaveOptions{Format: format}
		if format == pusher.OCIDir {
			o.Dir = out
			return pusher.Save(c.Context, s, args, o)
		}
		if out == "" {
			o.Output = c.App.Writer
			return pusher.Save(c.Context, s, args, o)
		}
		// Written beside the target and renamed: a failed save leaves no
		// half archive under the name.
		f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
		if err != nil {
			return fmt.Errorf("creating %s: %w", out, err)
		}
		defer os.Remove(f.Name())
		o.Output = f
		if err := pusher.Save(c.Context, s, args, o); err != nil {
			f.Close()
			return err
		}
		if err := f.Chmod(0o644); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", out, err)
		}
		if err := os.Rename(f.Name(), out); err != nil {
			return fmt.Errorf("writing %s: %w", out, err)
		}
		return nil
	})
}
