package commands

import (
	"bytes"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const cliModule = "github.com/urfave/cli/v2"

// moduleRoot is the directory holding go.mod, above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: %v", dir, err)
	}
	return dir
}

// cliAllowed reports whether a file (relative to the module root) may
// import the CLI framework: only commands/ and main.go.
func cliAllowed(rel string) bool {
	rel = filepath.ToSlash(rel)
	return rel == "main.go" || rel == "main_test.go" || strings.HasPrefix(rel, "commands/") && !strings.Contains(strings.TrimPrefix(rel, "commands/"), "/")
}

// TestOnlyCommandsImportCLI keeps the layering of docs/DESIGN: library
// packages take Options and writers and never see the CLI framework. It
// reads every Go file's imports, so it catches files behind build tags too.
func TestOnlyCommandsImportCLI(t *testing.T) {
	root := moduleRoot(t)
	var offenders []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "vendor" || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if (p == cliModule || strings.HasPrefix(p, cliModule+"/")) && !cliAllowed(rel) {
				offenders = append(offenders, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(offenders) > 0 {
		sort.Strings(offenders)
		t.Fatalf("only commands/ and main.go may import %s; these files do:\n\t%s\nmove the CLI code to commands/ and pass an Options struct to the library",
			cliModule, strings.Join(offenders, "\n\t"))
	}
}

// TestLibraryDependsNotOnCLI checks the transitive rule with the go tool:
// no package except commands and main reaches the CLI framework (for
// instance by importing commands).
func TestLibraryDependsNotOnCLI(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to list dependencies: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-tags", "exclude_graphdriver_btrfs",
		"-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...")
	cmd.Dir = moduleRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	const mod = "github.com/nook-containers/nook"
	var offenders []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		pkg := f[0]
		if pkg == mod || pkg == mod+"/commands" {
			continue
		}
		for _, dep := range f[1:] {
			if dep == cliModule || strings.HasPrefix(dep, cliModule+"/") || dep == mod+"/commands" {
				offenders = append(offenders, pkg+" -> "+dep)
			}
		}
	}
	if len(offenders) > 0 {
		t.Fatalf("library packages must not depend on the CLI (arrows point down only):\n\t%s", strings.Join(offenders, "\n\t"))
	}
}
