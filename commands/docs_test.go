package commands

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/commands.md from the command tree")

const docsHeader = "<!-- Generated from nook's command tree by 'make docs' " +
	"(go test ./commands -run TestDocs -update). Do not edit by hand. -->\n\n"

// TestDocs fails when docs/commands.md no longer matches the command line,
// so the reference cannot go stale.
func TestDocs(t *testing.T) {
	app := NewApp(strings.NewReader(""), io.Discard, io.Discard)
	md, err := app.ToMarkdown()
	if err != nil {
		t.Fatalf("rendering the command reference: %v", err)
	}
	want := []byte(docsHeader + strings.TrimSpace(md) + "\n")
	path := filepath.Join("..", "docs", "commands.md")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v (create it with: make docs)", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/commands.md is stale: the command line changed. Refresh it with:\n\tmake docs   (go test ./commands -run TestDocs -update)\nfirst difference near: %s", firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: the file has %q, the command tree gives %q", i+1, x, y)
		}
	}
	return "(none)"
}
