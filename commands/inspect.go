package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/store"
)

// inspectCommand is the top-level inspect: images now, containers once
// they exist (--type picks).
func inspectCommand() *cli.Command {
	cmd := imageInspectCommand("inspect")
	cmd.Usage = "show low-level information on images (and containers)"
	cmd.UsageText = "nook inspect [--type image|container] [--format TEMPLATE] NAME [NAME...]"
	cmd.Flags = append(cmd.Flags, &cli.StringFlag{Name: "type", Usage: "only inspect objects of this type: image or container"})
	inner := cmd.Action
	cmd.Action = func(c *cli.Context) error {
		switch c.String("type") {
		case "", "image":
			return inner(c)
		default:
			return usageError(c, "unknown --type %q: use image or container", c.String("type"))
		}
	}
	_ = fmt.Sprint
	_ = store.ShortID
	return cmd
}
