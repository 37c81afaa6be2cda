package commands

import (
	"fmt"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/store"
)

// ImageRow is one row of 'nook images', with docker's --format fields.
type ImageRow struct {
	ID           string
	Repository   string
	Tag          string
	Digest       string
	CreatedSince string
	CreatedAt    string
	Size         string
	Containers   string
	SharedSize   string
	UniqueSize   string
	VirtualSize  string
}

func imageRows(im *store.Image, noTrunc bool) []ImageRow {
	id := store.ShortID(im.ID)
	if noTrunc {
		id = "sha256:" + im.ID
	}
	base := ImageRow{
		ID:           id,
		Digest:       string(im.Digest),
		CreatedSince: since(im.Created),
		CreatedAt:    im.Created.Format("2006-01-02 15:04:05 -0700 MST"),
		Size:         humanSize(im.Size),
		VirtualSize:  humanSize(im.Size),
		Containers:   "N/A",
		SharedSize:   "N/A",
		UniqueSize:   "N/A",
	}
	if base.Digest == "" {
		base.Digest = "<none>"
	}
	if len(im.Names) == 0 {
		r := base
		r.Repository, r.Tag = "<none>", "<none>"
		return []ImageRow{r}
	}
	var rows []ImageRow
	for _, n := range im.Names {
		r := base
		named, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			r.Repository, r.Tag = n, "<none>"
		} else {
			r.Repository = reference.FamiliarName(named)
			r.Tag = "<none>"
			if t, ok := named.(reference.Tagged); ok {
				r.Tag = t.Tag()
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func imagesFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only show image IDs"},
		&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "show all images (nook keeps no intermediate images, so the same as without)"},
		&cli.BoolFlag{Name: "digests", Usage: "show digests"},
		&cli.BoolFlag{Name: "no-trunc", Usage: "do not truncate output"},
		&cli.StringSliceFlag{Name: "filter", Usage: "filter output: dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE"},
		formatFlag(),
	}
}

func imagesCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "list images",
		UsageText: "nook " + name + " [OPTIONS] [REPOSITORY[:TAG]]",
		Description: `Examples:
  nook images
  nook images -q
  nook images --digests --no-trunc
  nook images --format '{{.Repository}}:{{.Tag}} {{.ID}}'
  nook images --format json`,
		Flags:  imagesFlags(),
		Action: listImages,
	}
}

func listImages(c *cli.Context) error {
	if c.NArg() > 1 {
		return usageError(c, "images takes at most one argument, got %d", c.NArg())
	}
	filters, err := parseImageFilters(c.StringSlice("filter"))
	if err != nil {
		return usageError(c, "%v", err)
	}
	if c.NArg() == 1 {
		filters.reference = append(filters.reference, c.Args().First())
	}
	return withStore(c, func(s *store.Store) error {
		imgs, err := s.Images()
		if err != nil {
			return err
		}
		if err := filters.resolve(s); err != nil {
			return err
		}
		noTrunc := c.Bool("no-trunc")
		var rows []ImageRow
		seen := map[string]bool{}
		for _, im := range imgs {
			if !filters.matchImage(im) {
				continue
			}
			for _, r := range imageRows(im, noTrunc) {
				if !filters.matchRow(r) {
					continue
				}
				if c.Bool("quiet") {
					if seen[r.ID] {
						continue
					}
					seen[r.ID] = true
				}
				rows = append(rows, r)
			}
		}
		w := c.App.Writer
		if c.Bool("quiet") {
			for _, r := range rows {
				fmt.Fprintln(w, r.ID)
			}
			return nil
		}
		if f := c.String("format"); f != "" && f != "table" {
			items := make([]any, len(rows))
			for i := range rows {
				items[i] = rows[i]
			}
			return printFormatted(c, f, items)
		}
		headers := []string{"REPOSITORY", "TAG"}
		if c.Bool("digests") {
			headers = append(headers, "DIGEST")
		}
		headers = append(headers, "IMAGE ID", "CREATED", "SIZE")
		t := newTable(w, headers...)
		for _, r := range rows {
			cols := []string{r.Repository, r.Tag}
			if c.Bool("digests") {
				cols = append(cols, r.Digest)
			}
			t.row(append(cols, r.ID, r.CreatedSince, r.Size)...)
		}
		return t.flush()
	})
}

type imageFilters struct {
	dangling      *bool
	reference     []string
	labels        []string
	before, since string
	beforeT       time.Time
	sinceT        time.Time
}

func parseImageFilters(in []string) (*imageFilters, error) {
	f := &imageFilters{}
	for _, s := range in {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter %q (expected name=value)", s)
		}
		switch k {
		case "dangling":
			b := v == "true" || v == "1"
			if !b && v != "false" && v != "0" {
				return nil, fmt.Errorf("invalid filter 'dangling=%s': use true or false", v)
			}
			f.dangling = &b
		case "reference":
			f.reference = append(f.reference, v)
		case "label":
			f.labels = append(f.labels, v)
		case "before":
			f.before = v
		case "since":
			f.since = v
		default:
			return nil, fmt.Errorf("invalid filter %q: use dangling, reference, label, before or since", k)
		}
	}
	return f, nil
}

func (f *imageFilters) resolve(s *store.Store) error {
	for _, p := range []struct {
		ref string
		t   *time.Time
	}{{f.before, &f.beforeT}, {f.since, &f.sinceT}} {
		if p.ref == "" {
			continue
		}
		im, err := s.Lookup(p.ref)
		if err != nil {
			return err
		}
		*p.t = im.Created
	}
	return nil
}

func (f *imageFilters) matchImage(im *store.Image) bool {
	if f.dangling != nil && *f.dangling != (len(im.Names) == 0) {
		return false
	}
	if !f.beforeT.IsZero() && !im.Created.Before(f.beforeT) {
		return false
	}
	if !f.sinceT.IsZero() && !im.Created.After(f.sinceT) {
		return false
	}
	if len(f.labels) > 0 {
		cfg, err := im.OCIConfig()
		if err != nil {
			return false
		}
		for _, l := range f.labels {
			if !labelMatches(cfg.Config.Labels, l) {
				return false
			}
		}
	}
	return true
}

func (f *imageFilters) matchRow(r ImageRow) bool {
	for _, pat := range f.reference {
		if !matchReference(pat, r.Repository, r.Tag) {
			return false
		}
	}
	return true
}

// matchReference matches docker's reference filter: a path.Match pattern
// against "repo" or "repo:tag".
func matchReference(pat, repo, tag string) bool {
	if ok, _ := pathMatch(pat, repo); ok {
		return true
	}
	ok, _ := pathMatch(pat, repo+":"+tag)
	return ok
}
