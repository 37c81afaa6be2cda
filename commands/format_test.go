package commands

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestTableFormatHeader(t *testing.T) {
	var out bytes.Buffer
	app := &cli.App{Writer: &out}
	c := cli.NewContext(app, flag.NewFlagSet("x", flag.ContinueOnError), nil)
	rows := []any{ImageRow{Repository: "busybox", Tag: "latest", ID: "0123456789ab", CreatedSince: "2 days ago"}}
	if err := printFormatted(c, `table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}`, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "REPOSITORY TAG IMAGE ID CREATED" {
		t.Fatalf("table output:\n%s", out.String())
	}
	out.Reset()
	if err := printFormatted(c, `table {{.ID}}\t{{.Names}}`, []any{PsRow{}}); err != nil {
		t.Fatal(err)
	}
	if h := strings.Join(strings.Fields(strings.Split(out.String(), "\n")[0]), " "); h != "CONTAINER ID NAMES" {
		t.Fatalf("ps header = %q", h)
	}
}

func TestLabelMatches(t *testing.T) {
	l := map[string]string{"env": "prod", "empty": ""}
	for f, want := range map[string]bool{"env": true, "env=prod": true, "env=dev": false, "empty=": true, "nope": false, "empty": true} {
		if got := labelMatches(l, f); got != want {
			t.Errorf("labelMatches(%q) = %v, want %v", f, got, want)
		}
	}
}
