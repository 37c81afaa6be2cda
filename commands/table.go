package commands

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
)

type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)}
	if len(headers) > 0 {
		t.row(headers...)
	}
	return t
}

func (t *table) row(cols ...string) { fmt.Fprintln(t.tw, strings.Join(cols, "\t")) }
func (t *table) flush() error       { return t.tw.Flush() }

// humanSize is docker's size format (3 significant digits, SI units).
func humanSize(n int64) string {
	if n < 0 {
		return "N/A"
	}
	return units.HumanSizeWithPrecision(float64(n), 3)
}

// since is docker's "CREATED" column.
func since(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}
