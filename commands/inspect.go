package commands

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
)

// inspectCommand is the top-level inspect: a name is looked up as a
// container first, then as an image (docker's order); --type picks one.
func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show low-level information on containers and images",
		UsageText: "nook inspect [--type container|image] [--format TEMPLATE] NAME [NAME...]",
		Description: `A container's document is docker's, plus OCIConfig: the OCI runtime
configuration it runs with.

Examples:
  nook inspect web --format '{{.State.Status}} {{.State.ExitCode}}'
  nook inspect --type image busybox
  nook inspect --format '{{json .OCIConfig.Process.Capabilities}}' web`,
		Flags: []cli.Flag{
			formatFlag(),
			&cli.StringFlag{Name: "type", Usage: "only inspect objects of this type: container or image"},
			&cli.BoolFlag{Name: "size", Aliases: []string{"s"}, Usage: "accepted for compatibility"},
		},
		Action: func(c *cli.Context) error {
			typ := c.String("type")
			switch typ {
			case "", "container", "image":
			default:
				return usageError(c, "unknown --type %q: use container or image", typ)
			}
			if c.NArg() < 1 {
				return usageError(c, "inspect needs at least 1 argument")
			}
			return withStore(c, func(s *store.Store) error {
				var docs []any
				failed := false
				for _, ref := range c.Args().Slice() {
					d, err := inspectAny(s, ref, typ)
					if err != nil {
						fmt.Fprintln(c.App.ErrWriter, "Error:", err)
						failed = true
						continue
					}
					docs = append(docs, d)
				}
				if err := printInspect(c, docs); err != nil {
					return err
				}
				if failed {
					return Exit(1, "")
				}
				return nil
			})
		},
	}
}

func inspectAny(s *store.Store, ref, typ string) (any, error) {
	if typ == "" || typ == "container" {
		d, err := inspectContainer(s, ref)
		var nf *runner.NotFoundError
		if err == nil || !errors.As(err, &nf) || typ == "container" {
			return d, err
		}
	}
	im, err := s.Lookup(ref)
	if err != nil {
		if typ == "" && errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("no such object: %s", ref)
		}
		return nil, err
	}
	return inspectImage(s, im)
}
