package commands

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/builder"
	"github.com/nook-containers/nook/store"
)

func historyCommand() *cli.Command {
	return &cli.Command{
		Name:      "history",
		Usage:     "show the history of an image",
		UsageText: "nook history [OPTIONS] IMAGE",
		Description: `One line per step that made the image, newest first.

Examples:
  nook history app:1
  nook history --no-trunc --format '{{.CreatedBy}}' app:1
  nook history --format json app:1`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "no-trunc", Usage: "do not shorten the output"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the image IDs"},
			&cli.BoolFlag{Name: "human", Aliases: []string{"H"}, Value: true, Usage: "print sizes and dates in human-readable form"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "history needs exactly one IMAGE")
			}
			return withStore(c, func(s *store.Store) error {
				lines, err := builder.History(s, c.Args().First())
				if err != nil {
					return err
				}
				noTrunc := c.Bool("no-trunc")
				type row struct {
					ID, CreatedSince, CreatedAt, CreatedBy, Size, Comment string
				}
				rows := make([]row, 0, len(lines))
				for _, l := range lines {
					id := l.ID
					if id != "<missing>" {
						id = "sha256:" + id
						if !noTrunc {
							id = store.ShortID(id)
						}
					}
					by := strings.ReplaceAll(l.CreatedBy, "\n", " ")
					if !noTrunc && len(by) > 45 {
						by = by[:44] + "…"
					}
					size := humanSize(l.Size)
					if !c.Bool("human") {
						size = fmt.Sprint(l.Size)
					}
					created := l.Created.Format(time.RFC3339)
					rows = append(rows, row{ID: id, CreatedSince: since(l.Created), CreatedAt: created, CreatedBy: by, Size: size, Comment: l.Comment})
				}
				if c.Bool("quiet") {
					for _, r := range rows {
						fmt.Fprintln(c.App.Writer, r.ID)
					}
					return nil
				}
				if f := c.String("format"); f != "" {
					items := make([]any, len(rows))
					for i := range rows {
						items[i] = rows[i]
					}
					return printFormatted(c, f, items)
				}
				t := newTable(c.App.Writer, "IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT")
				for _, r := range rows {
					t.row(r.ID, r.CreatedSince, r.CreatedBy, r.Size, r.Comment)
				}
				return t.flush()
			})
		},
	}
}
