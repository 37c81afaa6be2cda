package builder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeResolver knows a few images, as a store would.
func fakeResolver(ref string) (*BaseImage, error) {
	switch ref {
	case "docker.io/library/busybox:latest":
		return &BaseImage{Ref: ref, ID: strings.Repeat("b", 64), Config: &v1.ConfigFile{
			Architecture: HostPlatform().Architecture, OS: "linux",
			Config:  v1.Config{Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}, Cmd: []string{"sh"}},
			RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}}},
			History: []v1.History{{CreatedBy: "nook import"}},
		}}, nil
	case "docker.io/library/onbuild:latest":
		return &BaseImage{Ref: ref, ID: strings.Repeat("c", 64), Config: &v1.ConfigFile{
			Architecture: HostPlatform().Architecture, OS: "linux",
			Config: v1.Config{OnBuild: []string{"COPY . /src", "RUN make"}},
		}}, nil
	}
	return nil, fmt.Errorf("image %q not found", ref)
}

// headerOptions reads "# args: K=V ..." and "# target: x" comment lines.
func headerOptions(data []byte) PlanOptions {
	o := PlanOptions{Resolve: fakeResolver, BuildArgs: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "# args: "); ok {
			for _, f := range strings.Fields(v) {
				k, val, _ := strings.Cut(f, "=")
				o.BuildArgs[k] = val
			}
		}
		if v, ok := strings.CutPrefix(line, "# target: "); ok {
			o.Target = strings.TrimSpace(v)
		}
	}
	return o
}

// dumpPlan renders a plan for golden files: readable, stable, complete.
func dumpPlan(p *Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "file %s target %d\n", p.File, p.Target)
	if p.Syntax != "" {
		fmt.Fprintf(&b, "syntax %s (ignored)\n", p.Syntax)
	}
	fmt.Fprintf(&b, "meta args %q\n", p.MetaArgs)
	if len(p.UnusedArgs) > 0 {
		fmt.Fprintf(&b, "unused build args %q\n", p.UnusedArgs)
	}
	for _, s := range p.Stages {
		fmt.Fprintf(&b, "\nstage %d %s (line %d) from %s", s.Index, s.DisplayName(), s.Line, s.Base)
		if !s.Needed {
			b.WriteString(" SKIPPED\n")
			continue
		}
		fmt.Fprintf(&b, " deps %v\n", s.Deps)
		for _, st := range s.Steps {
			ob := ""
			if st.OnBuild {
				ob = " (onbuild)"
			}
			fmt.Fprintf(&b, "  %d: [%s] %s%s\n", st.Line, st.Kind, st.Text, ob)
			if st.Key != "" {
				fmt.Fprintf(&b, "      key %s\n", st.Key[:16])
			}
			for _, v := range []any{st.Run, st.Copy, st.Workdir} {
				if v == nil || fmt.Sprint(v) == "<nil>" {
					continue
				}
				j, _ := json.Marshal(v)
				fmt.Fprintf(&b, "      %s\n", j)
			}
		}
		for _, h := range s.History {
			fmt.Fprintf(&b, "  history %q layer-step %d\n", h.CreatedBy, h.Step)
		}
		cfg, _ := json.MarshalIndent(s.Config.Config, "  ", "  ")
		fmt.Fprintf(&b, "  config %s\n", cfg)
	}
	return b.String()
}

func TestPlanGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/plan/*.Dockerfile")
	if len(files) == 0 {
		t.Fatal("no testdata/plan/*.Dockerfile")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".Dockerfile")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			df, err := Parse(filepath.Base(f), data)
			if err == nil {
				var p *Plan
				p, err = MakePlan(df, headerOptions(data))
				if err == nil {
					got = dumpPlan(p)
					// Planning twice gives the same plan (no hidden state).
					p2, err2 := MakePlan(df, headerOptions(data))
					if err2 != nil || dumpPlan(p2) != got {
						t.Fatalf("second plan differs: %v", err2)
					}
				}
			}
			if err != nil {
				got = "error: " + err.Error() + "\n"
			}
			golden := strings.TrimSuffix(f, ".Dockerfile") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./builder -run TestPlanGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("plan of %s differs from %s (run with -update if intended):\n--- got\n%s--- want\n%s", f, golden, got, want)
			}
		})
	}
}

func planString(t *testing.T, dockerfile string, o PlanOptions) (*Plan, error) {
	t.Helper()
	if o.Resolve == nil {
		o.Resolve = fakeResolver
	}
	df, err := Parse("Dockerfile", []byte(dockerfile))
	if err != nil {
		return nil, err
	}
	return MakePlan(df, o)
}

func TestPlanErrorsNameFileAndLine(t *testing.T) {
	cases := []struct{ name, df, want string }{
		{"unknown instruction", "FROM busybox\nFOO bar\n", "Dockerfile:2: unknown instruction: FOO"},
		{"syntax", "FROM busybox\nENV\n", "Dockerfile:2: ENV requires at least one argument"},
		{"missing stage", "FROM busybox\nCOPY --from=nope /a /b\n", "Dockerfile:2:"},
		{"later stage", "FROM busybox AS a\nCOPY --from=b /x /y\nFROM busybox AS b\n", "Dockerfile:2: cannot copy from stage \"b\": it needs to be defined before the current stage \"a\""},
		{"self stage", "FROM busybox AS a\nCOPY --from=a /x /y\n", "Dockerfile:2: cannot copy from stage \"a\""},
		{"no from", "RUN true\n", "Dockerfile:1:"},
		{"blank base", "ARG X\nFROM $X\n", "Dockerfile:2: base name ($X) should not be blank"},
		{"other platform", "FROM --platform=linux/s390x busybox\n", "Dockerfile:1: platform linux/s390x is not supported"},
		{"parent path", "FROM busybox\nCOPY ../x /y\n", "Dockerfile:2: forbidden path outside the build context: ../x"},
		{"unknown image", "FROM nothere\n", "Dockerfile:1: base image nothere:latest: image"},
		{"chmod", "FROM busybox\nCOPY --chmod=999 a /b\n", "Dockerfile:2: invalid chmod parameter"},
		{"copy url", "FROM busybox\nCOPY http://x/y /z\n", "Dockerfile:2: source can't be a URL for COPY"},
		{"multi dest", "FROM busybox\nCOPY a b /z\n", "Dockerfile:2: when using COPY with more than one source file"},
		{"bad signal", "FROM busybox\nSTOPSIGNAL SIGNOPE\n", "Dockerfile:2: invalid signal"},
		{"target", "FROM busybox AS a\n", "target stage \"zz\" could not be found"},
		{"dup stage", "FROM busybox AS a\nFROM busybox AS a\n", "Dockerfile:2: duplicate stage name"},
		{"bad expansion", "FROM busybox\nENV A=${B:?must be set}\n", "Dockerfile:2:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := PlanOptions{}
			if c.name == "target" {
				o.Target = "zz"
			}
			_, err := planString(t, c.df, o)
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("error %T is not a *builder.Error", err)
			}
		})
	}
}

func TestPlanKeys(t *testing.T) {
	base := "FROM busybox\nARG V=1\nRUN echo a\nCOPY f /f\nRUN echo b\n"
	p1, err := planString(t, base, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := planString(t, base, PlanOptions{BuildArgs: map[string]string{"V": "2"}})
	s1, s2 := p1.Stages[0].Steps, p2.Stages[0].Steps
	// ARG V is in RUN's environment: both RUN keys change; COPY's does not.
	if s1[1].Key == s2[1].Key || s1[3].Key == s2[3].Key {
		t.Errorf("a changed build arg must change the RUN keys after its ARG")
	}
	if s1[2].Key != s2[2].Key {
		t.Errorf("a changed build arg must not change the COPY key")
	}
	// An undeclared build arg changes nothing and is reported unused.
	p3, _ := planString(t, base, PlanOptions{BuildArgs: map[string]string{"OTHER": "x"}})
	if p3.Stages[0].Steps[1].Key != s1[1].Key || len(p3.UnusedArgs) != 1 {
		t.Errorf("an unused build arg changed a key or was not reported: %v", p3.UnusedArgs)
	}
	// Proxy args reach RUN but not its key.
	p4, _ := planString(t, base, PlanOptions{BuildArgs: map[string]string{"HTTP_PROXY": "http://p"}})
	if r := p4.Stages[0].Steps[1]; r.Key != s1[1].Key || len(r.Run.ProxyEnv) != 1 {
		t.Errorf("proxy arg: key changed or not passed: %v", r.Run.ProxyEnv)
	}
}

func TestPlanSecretsStayOutOfHistory(t *testing.T) {
	p, err := planString(t, "FROM busybox\nRUN --mount=type=secret,id=tok cat /run/secrets/tok\n", PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Stages[0].Steps[0].Run
	if len(r.Mounts) != 1 || r.Mounts[0].Target != "/run/secrets/tok" || r.Mounts[0].ID != "tok" {
		t.Fatalf("secret mount = %+v", r.Mounts)
	}
	if strings.Contains(r.CreatedBy, "--mount") {
		t.Fatalf("history line has mount flags: %q", r.CreatedBy)
	}
}
