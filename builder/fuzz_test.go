package builder

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds Dockerfiles to parsing, expansion and planning: any
// input must give a plan or an error, never a panic or a hang. Seeds are
// the golden-plan inputs; a failing input belongs in testdata/fuzz.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/plan/*.Dockerfile")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, "V=1")
		}
	}
	f.Add([]byte("FROM scratch\nCOPY <<EOF /x\n${A:-${B:-${C}}}\nEOF\n"), "A=")
	f.Fuzz(func(t *testing.T, data []byte, arg string) {
		if len(data) > 64<<10 {
			return
		}
		df, err := Parse("Dockerfile", data)
		if err != nil {
			return
		}
		args := map[string]string{}
		if k, v, ok := cut(arg, '='); ok && k != "" {
			args[k] = v
		}
		_, _ = MakePlan(df, PlanOptions{BuildArgs: args, Resolve: fakeResolver})
	})
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
