package commands

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/builder"
	"github.com/nook-containers/nook/imagecfg"
	"github.com/nook-containers/nook/store"
)

func imageCommand() *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "manage images",
		Subcommands: []*cli.Command{
			imagesCommand("ls"),
			importCommand(),
			imageInspectCommand("inspect"),
			rmiCommand("rm"),
			tagCommand(),
			imagePruneCommand(),
		},
	}
}

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "create an image from a root filesystem tarball",
		UsageText: "nook import [OPTIONS] FILE|- [REPOSITORY[:TAG]]",
		Description: `The tarball may be plain, gzip, bzip2, xz or zstd compressed; "-" reads it
from standard input.

Examples:
  nook import rootfs.tar busybox
  nook import --change 'CMD ["/bin/sh"]' --change 'ENV A=b' rootfs.tar.gz app:1
  cat rootfs.tar | nook import - busybox`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "change", Aliases: []string{"c"}, Usage: "apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR)"},
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "set the commit message of the image's history"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the image ID"},
			&cli.StringFlag{Name: "platform", Usage: "set the platform (only the host's is accepted)"},
		},
		Action: importImage,
	}
}

func importImage(c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return usageError(c, "import needs a FILE (or -) and an optional REPOSITORY[:TAG]")
	}
	var names []string
	if c.NArg() == 2 {
		named, err := store.NormalizeName(c.Args().Get(1))
		if err != nil {
			return usageError(c, "%v", err)
		}
		if _, ok := named.(reference.Digested); ok {
			return usageError(c, "cannot import to a digest reference %q", c.Args().Get(1))
		}
		names = []string{named.String()}
	}
	changes := c.StringSlice("change")
	// Check the changes before reading a large tarball.
	if err := imagecfg.ApplyChanges(&v1.Config{}, changes); err != nil {
		return usageError(c, "%v", err)
	}
	if p := c.String("platform"); p != "" {
		if err := checkHostPlatform(p); err != nil {
			return usageError(c, "%v", err)
		}
	}
	src := c.Args().First()
	var r io.Reader
	if src == "-" {
		r = c.App.Reader
	} else {
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("opening %s: %w", src, err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return fmt.Errorf("%s is a directory: make a tarball of it first (tar -C %s -c .)", src, src)
		}
		r = f
	}
	return withStore(c, func(s *store.Store) error {
		img, err := s.Import(r, store.ImportOptions{
			Names:   names,
			Message: c.String("message"),
			Config: func(cfg *v1.Config) error {
				return imagecfg.ApplyChanges(cfg, changes)
			},
		})
		if err != nil {
			return fmt.Errorf("importing %s: %w", src, err)
		}
		fmt.Fprintln(c.App.Writer, "sha256:"+img.ID)
		return nil
	})
}

func tagCommand() *cli.Command {
	return &cli.Command{
		Name:      "tag",
		Usage:     "give an image another name",
		UsageText: "nook tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Description: `Examples:
  nook tag busybox localhost/busybox:1
  nook tag 3f57d9401f8d registry.example.com/team/app:2`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError(c, "tag needs exactly 2 arguments, got %d", c.NArg())
			}
			if _, err := store.NormalizeName(c.Args().Get(1)); err != nil {
				return usageError(c, "%v", err)
			}
			return withStore(c, func(s *store.Store) error {
				return s.Tag(c.Args().Get(0), c.Args().Get(1))
			})
		},
	}
}

func rmiCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "remove images",
		UsageText: "nook " + name + " [-f] IMAGE [IMAGE...]",
		Description: `A name of an image that has other names is only untagged. An image used by a
container is refused unless -f is given, which then only untags it.

Examples:
  nook rmi busybox
  nook rmi -f 3f57d9401f8d`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "remove even if several names or containers refer to it"},
			&cli.BoolFlag{Name: "no-prune", Usage: "accepted for compatibility (nook keeps no untagged parents)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return usageError(c, "rmi needs at least 1 argument")
			}
			var failed error
			err := withStore(c, func(s *store.Store) error {
				for _, ref := range c.Args().Slice() {
					reps, err := s.RemoveImage(ref, c.Bool("force"))
					if err != nil {
						fmt.Fprintln(c.App.ErrWriter, "Error:", err)
						failed = err
						continue
					}
					for _, r := range reps {
						fmt.Fprintln(c.App.Writer, r)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if failed != nil {
				code := 1
				if errors.Is(failed, store.ErrNotFound) {
					code = 1
				}
				return Exit(code, "")
			}
			return nil
		},
	}
}

func imagePruneCommand() *cli.Command {
	return &cli.Command{
		Name:      "prune",
		Usage:     "remove dangling images and orphan layers",
		UsageText: "nook image prune [-a] [-f]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "remove every image no container uses"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
		},
		Action: func(c *cli.Context) error {
			what := "WARNING! This will remove all dangling images."
			if c.Bool("all") {
				what = "WARNING! This will remove all images without at least one container associated to them."
			}
			if !c.Bool("force") && !confirm(c, what) {
				return nil
			}
			return pruneImages(c, c.Bool("all"))
		},
	}
}

func pruneImages(c *cli.Context, all bool) error {
	return withStore(c, func(s *store.Store) error {
		keep, err := builder.CacheLayers(s)
		if err != nil {
			return err
		}
		res, err := s.PruneImagesKeeping(all, keep)
		if res != nil {
			if len(res.Images) > 0 {
				fmt.Fprintln(c.App.Writer, "Deleted Images:")
				for _, id := range res.Images {
					fmt.Fprintln(c.App.Writer, "deleted: sha256:"+id)
				}
				fmt.Fprintln(c.App.Writer)
			}
			fmt.Fprintf(c.App.Writer, "Total reclaimed space: %s\n", humanSize(res.SpaceReclaimed))
		}
		return err
	})
}

// ImageInspect is docker's image inspect document.
type ImageInspect struct {
	Id                string // docker spells it Id (templates use .Id)
	RepoTags          []string
	RepoDigests       []string
	Parent            string
	Comment           string
	Created           time.Time
	Author            string
	Config            v1.Config
	Architecture      string
	Variant           string `json:",omitempty"`
	Os                string
	Size              int64
	GraphDriver       GraphDriver
	RootFS            RootFS
	History           []v1.History
	Digest            string
	ManifestMediaType string
	Metadata          struct{ LastTagTime time.Time }
}

// GraphDriver names the storage driver, as docker's inspect does.
type GraphDriver struct {
	Name string
	Data map[string]string
}

// RootFS lists an image's layer diff IDs.
type RootFS struct {
	Type   string
	Layers []string
}

func inspectImage(s *store.Store, im *store.Image) (*ImageInspect, error) {
	cfg, err := im.OCIConfig()
	if err != nil {
		return nil, err
	}
	out := &ImageInspect{
		Id:           "sha256:" + im.ID,
		RepoTags:     []string{},
		RepoDigests:  []string{},
		Created:      cfg.Created.Time,
		Author:       cfg.Author,
		Config:       cfg.Config,
		Architecture: cfg.Architecture,
		Variant:      cfg.Variant,
		Os:           cfg.OS,
		Size:         im.Size,
		GraphDriver:  GraphDriver{Name: s.Driver(), Data: map[string]string{}},
		RootFS:       RootFS{Type: cfg.RootFS.Type},
		History:      cfg.History,
		Digest:       string(im.Digest),
	}
	if m, err := im.OCIManifest(); err == nil {
		out.ManifestMediaType = m.MediaType
	}
	if len(cfg.History) > 0 {
		out.Comment = cfg.History[len(cfg.History)-1].Comment
	}
	for _, d := range cfg.RootFS.DiffIDs {
		out.RootFS.Layers = append(out.RootFS.Layers, d.String())
	}
	for _, n := range im.Names {
		out.RepoTags = append(out.RepoTags, store.FamiliarName(n))
		if named, err := reference.ParseNormalizedNamed(n); err == nil && im.Digest != "" {
			if cn, err := reference.WithDigest(reference.TrimNamed(named), im.Digest); err == nil {
				out.RepoDigests = appendUnique(out.RepoDigests, reference.FamiliarString(cn))
			}
		}
	}
	return out, nil
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func imageInspectCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "show an image's configuration and manifest facts",
		UsageText: "nook image inspect [--format TEMPLATE] IMAGE [IMAGE...]",
		Description: `Examples:
  nook image inspect busybox
  nook image inspect --format '{{.Config.Cmd}}' busybox
  nook image inspect --format '{{json .RootFS}}' busybox`,
		Flags: []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return usageError(c, "inspect needs at least 1 argument")
			}
			return withStore(c, func(s *store.Store) error {
				var docs []any
				var firstErr error
				for _, ref := range c.Args().Slice() {
					im, err := s.Lookup(ref)
					if err == nil {
						var d *ImageInspect
						d, err = inspectImage(s, im)
						if err == nil {
							docs = append(docs, d)
							continue
						}
					}
					fmt.Fprintln(c.App.ErrWriter, "Error:", err)
					if firstErr == nil {
						firstErr = err
					}
				}
				if err := printInspect(c, docs); err != nil {
					return err
				}
				if firstErr != nil {
					return Exit(1, "")
				}
				return nil
			})
		},
	}
}

// printInspect prints inspect documents: a JSON array, or each through
// --format.
func printInspect(c *cli.Context, docs []any) error {
	if f := c.String("format"); f != "" && f != "json" {
		return printFormatted(c, f, docs)
	}
	if docs == nil {
		docs = []any{}
	}
	return printJSON(c.App.Writer, docs)
}

func checkHostPlatform(p string) error {
	want := imagecfg.NewConfigFile()
	plat, err := v1.ParsePlatform(p)
	if err != nil {
		return fmt.Errorf("invalid --platform %q: %w", p, err)
	}
	if plat.OS != want.OS || plat.Architecture != want.Architecture {
		return fmt.Errorf("--platform %s is not this host's platform (%s/%s): nook runs and builds for the host only", p, want.OS, want.Architecture)
	}
	return nil
}
