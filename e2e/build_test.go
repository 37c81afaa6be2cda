package e2e

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// writeFiles creates files (path -> content) under dir; a content of
// "->TARGET" makes a symlink.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Remove(full)
		if target, ok := strings.CutPrefix(c, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// context makes a build context directory with files.
func (e *Env) context(t *testing.T, name string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(e.Dir, name)
	writeFiles(t, dir, files)
	return dir
}

func stepLines(stderr, mark string) int {
	n := 0
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasSuffix(strings.TrimSpace(l), mark) || strings.Contains(l, "] "+mark) {
			n++
		}
	}
	return n
}

// tarFiles reads a tar stream into name -> content (links: "->target").
func tarFiles(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "./")
		switch h.Typeflag {
		case tar.TypeSymlink:
			out[name] = "->" + h.Linkname
		case tar.TypeReg:
			b, _ := io.ReadAll(tr)
			out[name] = string(b)
		case tar.TypeDir:
			out[name] = "<dir>"
		}
	}
}

func TestBuildScratchCopyConfigAndCache(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	dir := e.context(t, "ctx", map[string]string{
		"Dockerfile": `# syntax=docker/dockerfile:1
ARG BASE=scratch
FROM ${BASE}
ARG V=1
ENV A=b PATHX=/x
WORKDIR /app
COPY src/ ./src/
COPY --chmod=0755 run.sh /usr/local/bin/
ADD files.tar /unpacked/
COPY <<EOF /etc/greeting
hello ${V} "quoted"
EOF
LABEL version=$V
EXPOSE 8080/tcp
VOLUME /data
USER 1000:1000
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD ["/bin/true"]
ENTRYPOINT ["/usr/local/bin/run.sh"]
CMD ["--help"]
COPY late.txt /late.txt
`,
		"src/a.txt":   "a\n",
		"src/b/c.txt": "c\n",
		"run.sh":      "#!/bin/sh\necho run\n",
		"late.txt":    "v1\n",
		"ignored.txt": "must not be copied\n",
	})
	// files.tar: an archive ADD unpacks.
	tdir := e.context(t, "tarsrc", map[string]string{"inner/x.txt": "x\n"})
	if out, err := exec.Command("tar", "-C", tdir, "-cf", filepath.Join(dir, "files.tar"), "inner").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	r := e.Run("build", "-t", "app:1", "-t", "app:latest", "--label", "from=cli", dir)
	if r.Code != 0 {
		t.Fatalf("build: %d\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "syntax directive") {
		t.Errorf("the syntax directive was not noted: %s", r.Stderr)
	}
	id1 := strings.TrimSpace(e.Must("image", "inspect", "--format", "{{.Id}}", "app:1"))
	cfg := e.Must("image", "inspect", "--format", "{{json .Config}}", "app:latest")
	for _, want := range []string{`"User":"1000:1000"`, `"WorkingDir":"/app"`, `"A=b"`, `"version":"1"`, `"from":"cli"`,
		`"8080/tcp":{}`, `"/data":{}`, `"StopSignal":"SIGINT"`, `"Entrypoint":["/usr/local/bin/run.sh"]`, `"Cmd":["--help"]`, `"Healthcheck":{"Test":["CMD","/bin/true"]`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %s: %s", want, cfg)
		}
	}
	hist := e.Must("history", "--no-trunc", "--format", "{{.CreatedBy}}", "app:1")
	for _, want := range []string{"COPY src/ /app/src/", "ADD files.tar /unpacked/", "WORKDIR /app", "ENV A=b PATHX=/x", "COPY <<EOF /etc/greeting"} {
		if !strings.Contains(hist, want) {
			t.Errorf("history lacks %q:\n%s", want, hist)
		}
	}
	// The filesystem, exported as a tar.
	files := e.exportTar(t, "app:1", dir)
	for p, want := range map[string]string{
		"app/src/a.txt": "a\n", "app/src/b/c.txt": "c\n", "usr/local/bin/run.sh": "#!/bin/sh\necho run\n",
		"unpacked/inner/x.txt": "x\n", "etc/greeting": "hello 1 \"quoted\"\n", "late.txt": "v1\n",
	} {
		if files[p] != want {
			t.Errorf("%s = %q, want %q", p, files[p], want)
		}
	}
	// A rebuild is fully cached and gives the same image.
	r = e.Run("build", "-t", "app:1", dir)
	if r.Code != 0 || stepLines(r.Stderr, "DONE") != 0 {
		t.Fatalf("rebuild ran steps:\n%s", r.Stderr)
	}
	if id := strings.TrimSpace(e.Must("image", "inspect", "--format", "{{.Id}}", "app:1")); id == id1 {
		// --label differs from the first build: the config differs.
		t.Logf("ids equal")
	}
	r2 := e.Run("build", "-q", "-t", "app:1", "--label", "from=cli", dir)
	if strings.TrimSpace(r2.Stdout) != id1 {
		t.Errorf("fully cached rebuild gave %q, want %q", r2.Stdout, id1)
	}
	// Changing the file copied last reruns only that step.
	writeFiles(t, dir, map[string]string{"late.txt": "v2\n"})
	r = e.Run("build", "-t", "app:1", dir)
	if r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	if n := stepLines(r.Stderr, "CACHED"); n != 5 {
		t.Errorf("after changing late.txt, %d steps were cached, want 5:\n%s", n, r.Stderr)
	}
	if !regexp.MustCompile(`COPY late.txt /late.txt\n\[[0-9/]+\] DONE`).MatchString(r.Stderr) {
		t.Errorf("the COPY of late.txt did not run:\n%s", r.Stderr)
	}
	// A mode change (metadata) invalidates too; a time change does not.
	os.Chtimes(filepath.Join(dir, "run.sh"), time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	if r = e.Run("build", dir); stepLines(r.Stderr, "DONE") != 0 {
		t.Errorf("an mtime change invalidated a step:\n%s", r.Stderr)
	}
	os.Chmod(filepath.Join(dir, "run.sh"), 0o700)
	if r = e.Run("build", dir); stepLines(r.Stderr, "DONE") != 4 {
		t.Errorf("a mode change must rerun the COPY of run.sh and what follows:\n%s", r.Stderr)
	}
	// A build arg used only by config steps changes no layer step.
	if r = e.Run("build", "--build-arg", "V=2", dir); stepLines(r.Stderr, "DONE") != 2 {
		t.Errorf("V is only in a heredoc COPY and a LABEL: that COPY and the one after it should run:\n%s", r.Stderr)
	}
	// --no-cache runs everything.
	if r = e.Run("build", "--no-cache", dir); stepLines(r.Stderr, "CACHED") != 0 {
		t.Errorf("--no-cache used the cache:\n%s", r.Stderr)
	}
	// builder prune empties the cache; images stay.
	e.Must("builder", "prune", "-f")
	if r = e.Run("build", "-t", "app:1", "--label", "from=cli", dir); stepLines(r.Stderr, "CACHED") != 0 {
		t.Errorf("the cache survived builder prune:\n%s", r.Stderr)
	}
	e.Must("image", "inspect", "app:latest")
}

// exportTar builds dir again with --output type=tar and reads it.
func (e *Env) exportTar(t *testing.T, tag, dir string) map[string]string {
	t.Helper()
	out := filepath.Join(e.Dir, "export.tar")
	e.Must("build", "-q", "--label", "from=cli", "--output", "type=tar,dest="+out, "-t", tag, dir)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return tarFiles(t, f)
}

func TestBuildContextRules(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	dir := e.context(t, "ctx", map[string]string{
		"Dockerfile":    "FROM scratch\nCOPY . /ctx/\n",
		".dockerignore": "*.log\nsecret/\n!keep.log\n",
		"a.log":         "ignored\n",
		"keep.log":      "kept\n",
		"secret/k":      "ignored\n",
		"up":            "->../..",
		"root":          "->/",
		"passwd":        "->/etc/passwd",
		"sub/f":         "f\n",
		"wild/x1.txt":   "1", "wild/x2.txt": "2", "wild/y.txt": "y",
	})
	files := e.exportTar(t, "ctx:1", dir)
	if _, ok := files["ctx/a.log"]; ok {
		t.Errorf(".dockerignore: a.log was copied")
	}
	if _, ok := files["ctx/secret/k"]; ok {
		t.Errorf(".dockerignore: secret/ was copied")
	}
	if files["ctx/keep.log"] != "kept\n" {
		t.Errorf(".dockerignore exception: keep.log = %q", files["ctx/keep.log"])
	}
	for link, target := range map[string]string{"ctx/up": "->../..", "ctx/root": "->/", "ctx/passwd": "->/etc/passwd"} {
		if files[link] != target {
			t.Errorf("symlink %s = %q, want the link %q (never the host files behind it)", link, files[link], target)
		}
	}
	for p := range files {
		if strings.HasPrefix(p, "ctx/root/") || strings.HasPrefix(p, "ctx/up/") {
			t.Fatalf("a symlink was followed outside the context: %s", p)
		}
	}
	// A symlink named as the source resolves inside the context only.
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY passwd /p\n"})
	e.Fails([]string{"Dockerfile:2", "not found"}, "build", dir)
	// Wildcards.
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY wild/x*.txt /w/\n"})
	files = e.exportTar(t, "w:1", dir)
	if files["w/x1.txt"] != "1" || files["w/x2.txt"] != "2" || files["w/y.txt"] != "" {
		t.Errorf("wildcard copy: %v", files)
	}
	// COPY ../x is refused.
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY ../x /x\n"})
	e.Fails([]string{"Dockerfile:2", "outside the build context"}, "build", dir)
	// <Dockerfile>.dockerignore wins over .dockerignore.
	writeFiles(t, dir, map[string]string{"alt.Dockerfile": "FROM scratch\nCOPY . /c/\n", "alt.Dockerfile.dockerignore": "sub\n"})
	out := filepath.Join(e.Dir, "alt.tar")
	e.Must("build", "-q", "-f", filepath.Join(dir, "alt.Dockerfile"), "--output", "type=tar,dest="+out, dir)
	f, _ := os.Open(out)
	files = tarFiles(t, f)
	f.Close()
	if _, ok := files["c/sub/f"]; ok {
		t.Errorf("alt.Dockerfile.dockerignore was not used")
	}
	if _, ok := files["c/a.log"]; !ok {
		t.Errorf("alt.Dockerfile.dockerignore must replace .dockerignore (a.log missing)")
	}
}

func TestBuildErrorsNameFileAndLine(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	cases := []struct {
		df    string
		wants []string
	}{
		{"FROM busybox\nFOO bar\n", []string{"Dockerfile:2", "unknown instruction: FOO"}},
		{"FROM busybox\nENV\n", []string{"Dockerfile:2", "ENV requires"}},
		{"FROM busybox\nCOPY missing.txt /\n", []string{"Dockerfile:2", "missing.txt", "not found"}},
		{"FROM busybox AS a\nCOPY --from=b /x /y\nFROM busybox AS b\n", []string{"Dockerfile:2", "cannot copy from stage \"b\""}},
		{"FROM nosuchimage\n", []string{"Dockerfile:1", "nosuchimage"}},
		{"FROM --platform=linux/s390x busybox\n", []string{"Dockerfile:1", "not supported"}},
		{"FROM busybox\nRUN <<EOF\necho unterminated\n", []string{"Dockerfile"}},
	}
	for i, c := range cases {
		dir := e.context(t, fmt.Sprintf("c%d", i), map[string]string{"Dockerfile": c.df})
		r := e.Fails(c.wants, "build", "-t", "bad:1", dir)
		if r.Code == 0 {
			t.Fatal("no failure")
		}
	}
	if out := e.Run("images", "-q", "bad"); strings.TrimSpace(out.Stdout) != "" {
		t.Errorf("a failed build tagged an image: %s", out.Stdout)
	}
	dir := e.context(t, "p", map[string]string{"Dockerfile": "FROM busybox\n"})
	e.Fails([]string{"platform", "not supported"}, "build", "--platform", "linux/s390x", dir)
	e.Fails([]string{"target stage \"nope\""}, "build", "--target", "nope", dir)
}

func mountCount(e *Env) int {
	r := e.Run("unshare", "cat", "/proc/self/mountinfo")
	return strings.Count(r.Stdout, e.Root)
}

func TestBuildRun(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	const secret = "s3cr3t-value-42"
	e.Setenv("TOKEN_ENV", secret)
	secretFile := filepath.Join(e.Dir, "secret.txt")
	os.WriteFile(secretFile, []byte(secret), 0o600)
	dir := e.context(t, "ctx", map[string]string{
		"Dockerfile": `FROM busybox AS build
ARG V=1
WORKDIR /work
RUN echo "built $V" > out.txt && id -u > uid.txt
RUN --mount=type=cache,target=/cache,id=c1 sh -c 'echo x >> /cache/count; wc -l < /cache/count > /work/cachecount'
RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /work/secretlen
RUN --mount=type=secret,id=envtok,env=TOKEN sh -c 'test "$TOKEN" = "` + secret + `" && echo ok > /work/envsecret'
RUN --mount=type=bind,source=data,target=/mnt cat /mnt/d.txt > /work/bound
RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/t && test ! -e /work/t'
RUN <<EOF
echo "heredoc $V" > /work/heredoc
EOF
USER 1000:1000
RUN id -u > /tmp/uid1000

FROM scratch
COPY --from=build /work/ /w/
COPY --from=build /tmp/uid1000 /w/
`,
		"data/d.txt": "bound data\n",
	})
	mounts := mountCount(e)
	args := []string{"build", "-t", "run:1", "--secret", "id=tok,src=" + secretFile, "--secret", "id=envtok,env=TOKEN_ENV", dir}
	r := e.Run(args...)
	if r.Code != 0 {
		t.Fatalf("build: %d\n%s", r.Code, r.Stderr)
	}
	files := e.exportTar(t, "run:1", dir)
	_ = files
	out := filepath.Join(e.Dir, "run.tar")
	e.Must(append([]string{"build", "-q", "--output", "type=tar,dest=" + out}, args[1:]...)...)
	f, _ := os.Open(out)
	files = tarFiles(t, f)
	f.Close()
	for p, want := range map[string]string{
		"w/out.txt": "built 1\n", "w/uid.txt": "0\n", "w/cachecount": "1\n", "w/secretlen": fmt.Sprintf("%d\n", len(secret)),
		"w/envsecret": "ok\n", "w/bound": "bound data\n", "w/heredoc": "heredoc 1\n", "w/uid1000": "1000\n",
	} {
		if files[p] != want {
			t.Errorf("%s = %q, want %q", p, files[p], want)
		}
	}
	// The cache mount persists across builds: a --no-cache build counts 2.
	r = e.Run(append([]string{"build", "--no-cache", "-q", "--output", "type=tar,dest=" + out}, args[1:]...)...)
	if r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	f, _ = os.Open(out)
	files = tarFiles(t, f)
	f.Close()
	if files["w/cachecount"] != "2\n" {
		t.Errorf("the cache mount did not persist: count %q", files["w/cachecount"])
	}
	// The secret is in no layer, config or history.
	insp := e.Must("image", "inspect", "run:1")
	hist := e.Must("history", "--no-trunc", "run:1")
	if strings.Contains(insp, secret) || strings.Contains(hist, secret) {
		t.Errorf("the secret is in the config or history")
	}
	if g := e.Run("unshare", "grep", "-r", "-l", secret, e.Root); strings.TrimSpace(g.Stdout) != "" {
		t.Errorf("the secret is in the store: %s", g.Stdout)
	}
	// A failing RUN: output and exit code shown, step named, nothing
	// tagged, no mount left.
	bad := e.context(t, "bad", map[string]string{"Dockerfile": "FROM busybox\nRUN echo before\nRUN echo failing-output && exit 3\n"})
	r = e.Fails([]string{"Dockerfile:3", "RUN echo failing-output && exit 3", "exited with code 3", "failing-output"}, "build", "-t", "bad:1", bad)
	if r.Code == 0 {
		t.Fatal("no failure")
	}
	if out := e.Run("image", "inspect", "bad:1"); out.Code == 0 {
		t.Errorf("a failed build tagged an image")
	}
	if n := mountCount(e); n > mounts {
		t.Errorf("%d mounts of the store after the builds, %d before", n, mounts)
	}
	// -q keeps output back but shows it for a failing step.
	r = e.Fails([]string{"failing-output"}, "build", "-q", bad)
	if strings.Contains(r.Stderr, "before") {
		t.Errorf("-q showed the output of a step that succeeded: %s", r.Stderr)
	}
	// --network none: no interface but lo.
	nd := e.context(t, "net", map[string]string{"Dockerfile": "FROM busybox\nRUN cat /proc/net/dev | grep -c : > /n\n"})
	outN := filepath.Join(e.Dir, "n.tar")
	e.Must("build", "--network", "none", "--output", "type=tar,dest="+outN, nd)
	f, _ = os.Open(outN)
	files = tarFiles(t, f)
	f.Close()
	if files["n"] != "1\n" {
		t.Errorf("--network none: %q interfaces, want 1 (lo)", files["n"])
	}
}

func TestBuildAddURLAndStdin(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	body := "remote file\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer srv.Close()
	sum := sha256.Sum256([]byte(body))
	good := "sha256:" + hex.EncodeToString(sum[:])
	dir := e.context(t, "ctx", map[string]string{
		"Dockerfile": fmt.Sprintf("FROM scratch\nADD --checksum=%s %s/dl/file.txt /d/\n", good, srv.URL),
	})
	files := e.exportTar(t, "url:1", dir)
	if files["d/file.txt"] != body {
		t.Errorf("ADD URL: %v", files)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM scratch\nADD --checksum=sha256:%s %s/dl/file.txt /d/\n", strings.Repeat("0", 64), srv.URL)})
	e.Fails([]string{"Dockerfile:2", "digest mismatch"}, "build", dir)

	// -f - and a tar context on stdin.
	df := "FROM scratch\nCOPY f /f\n"
	ctx := e.context(t, "stdin", map[string]string{"f": "from stdin\n"})
	r := e.RunIn(df, "build", "-q", "-f", "-", "-t", "s:1", ctx)
	if r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	writeFiles(t, ctx, map[string]string{"Dockerfile": df})
	tarOut, err := exec.Command("tar", "-C", ctx, "-c", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	r = e.RunIn(string(tarOut), "build", "-q", "-t", "s:2", "--iidfile", filepath.Join(e.Dir, "iid"), "-")
	if r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	iid, _ := os.ReadFile(filepath.Join(e.Dir, "iid"))
	if strings.TrimSpace(r.Stdout) != string(iid) || !strings.HasPrefix(string(iid), "sha256:") {
		t.Errorf("-q printed %q, --iidfile has %q", r.Stdout, iid)
	}
	// A Dockerfile on stdin as the context: no files.
	if r = e.RunIn("FROM scratch\nLABEL a=b\n", "build", "-q", "-"); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	// docker and oci archives, local directory.
	for _, typ := range []string{"docker", "oci"} {
		p := filepath.Join(e.Dir, typ+".tar")
		e.Must("build", "-q", "-t", "s:1", "--output", "type="+typ+",dest="+p, ctx)
		f, _ := os.Open(p)
		names := tarFiles(t, f)
		f.Close()
		want := "manifest.json"
		if typ == "oci" {
			want = "index.json"
		}
		if _, ok := names[want]; !ok {
			t.Errorf("--output type=%s: no %s in %v", typ, want, names)
		}
	}
	local := filepath.Join(e.Dir, "local")
	e.Must("build", "-q", "--output", "type=local,dest="+local, ctx)
	if b, _ := os.ReadFile(filepath.Join(local, "f")); string(b) != "from stdin\n" {
		t.Errorf("--output type=local: f = %q", b)
	}
}

func TestBuildReproducibleAndMultiStage(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	dir := e.context(t, "ctx", map[string]string{
		"Dockerfile": `FROM busybox AS base
RUN echo base > /base
FROM base AS test
RUN echo test > /test
FROM base AS release
ARG TARGETARCH
RUN echo "$TARGETARCH" > /arch
FROM scratch
COPY --from=release /arch /base /
`,
	})
	ids := map[string]bool{}
	for i := 0; i < 2; i++ {
		r := e.Run("build", "-q", "--no-cache", "--timestamp", "1700000000", dir)
		if r.Code != 0 {
			t.Fatal(r.Stderr)
		}
		ids[strings.TrimSpace(r.Stdout)] = true
	}
	if len(ids) != 1 {
		t.Errorf("--timestamp builds differ: %v", ids)
	}
	e.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	r := e.Run("build", "-q", dir)
	if !ids[strings.TrimSpace(r.Stdout)] {
		t.Errorf("SOURCE_DATE_EPOCH build %q differs from --timestamp %v", r.Stdout, ids)
	}
	// The unused stage "test" is skipped; --target builds it.
	r = e.Run("build", dir)
	if strings.Contains(r.Stderr, "echo test") {
		t.Errorf("the unused stage ran:\n%s", r.Stderr)
	}
	r = e.Run("build", "--target", "test", "-t", "t:1", dir)
	if r.Code != 0 || !strings.Contains(r.Stderr, "echo test") || strings.Contains(r.Stderr, "TARGETARCH") {
		t.Errorf("--target test:\n%s", r.Stderr)
	}
}

func TestBuildLargeDockerfiles(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	var b strings.Builder
	b.WriteString("FROM scratch\n")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, "ENV V%d=%d\n", i, i)
	}
	b.WriteString("COPY f /f\n")
	dir := e.context(t, "big", map[string]string{"Dockerfile": b.String(), "f": "x"})
	start := time.Now()
	r := e.Run("build", "-q", dir)
	if r.Code != 0 {
		t.Fatalf("5,000 instructions: %s", r.Stderr)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("5,000 instructions took %v", d)
	}
	// Deeply nested heredocs and quotes: builds or fails cleanly.
	var h strings.Builder
	h.WriteString("FROM scratch\nCOPY <<EOF /deep\n")
	for i := 0; i < 2000; i++ {
		h.WriteString(strings.Repeat("${A:-", 50) + "x" + strings.Repeat("}", 50) + "\n")
	}
	h.WriteString("EOF\n")
	dir = e.context(t, "deep", map[string]string{"Dockerfile": h.String()})
	start = time.Now()
	r = e.Run("build", "-q", dir)
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("nested expansions took %v (exit %d)", d, r.Code)
	}
	if r.Code != 0 && !strings.Contains(r.Stderr, "Dockerfile") {
		t.Errorf("a failure must name the Dockerfile: %s", r.Stderr)
	}
}

func TestBuildKill9AndConcurrentBuilds(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	dir := e.context(t, "ctx", map[string]string{
		"Dockerfile": "FROM busybox\nCOPY a /a\nRUN sleep 2 && echo done > /d\nCOPY b /b\n",
		"a":          "a", "b": "b",
	})
	cmd := exec.Command(nookBin, "build", "-t", "k:1", dir)
	cmd.Env = e.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	if r := e.Run("image", "inspect", "k:1"); r.Code == 0 {
		t.Fatalf("a killed build tagged its image:\n%s", stderr.String())
	}
	r := e.Run("build", "-t", "k:1", dir)
	if r.Code != 0 {
		t.Fatalf("the build after kill -9 failed: %s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "RUN sleep 2") {
		t.Fatalf("no RUN step in:\n%s", r.Stderr)
	}
	// Four builds of one context at once: all succeed.
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM busybox\nCOPY a /a\nRUN echo x > /x\nCOPY b /b\n"})
	errs := make(chan string, 4)
	for i := 0; i < 4; i++ {
		go func(i int) {
			r := e.Run("build", "-q", "-t", fmt.Sprintf("c:%d", i), dir)
			if r.Code != 0 {
				errs <- r.Stderr
				return
			}
			errs <- ""
		}(i)
	}
	for i := 0; i < 4; i++ {
		if msg := <-errs; msg != "" {
			t.Errorf("a concurrent build failed: %s", msg)
		}
	}
	for i := 0; i < 4; i++ {
		e.Must("image", "inspect", fmt.Sprintf("c:%d", i))
	}
}

// debianTar is a Debian root filesystem made with debootstrap, cached
// between runs (made here when running as root and missing).
func debianTar(t *testing.T) string {
	t.Helper()
	p := os.Getenv("NOOK_TEST_DEBIAN_TAR")
	if p == "" {
		p = "/var/cache/nook-test/debian-bookworm.tar"
	}
	if _, err := os.Stat(p); err == nil {
		return p
	}
	fix := fmt.Sprintf("as root: debootstrap --variant=minbase bookworm %s.d http://deb.debian.org/debian && tar -C %s.d --numeric-owner -cf %s .", p, p, p)
	if os.Getuid() != 0 {
		t.Fatalf("no Debian rootfs at %s; make it %s (the root e2e run does this)", p, fix)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	d := p + ".d"
	os.RemoveAll(d)
	if out, err := exec.Command("debootstrap", "--variant=minbase", "bookworm", d, "http://deb.debian.org/debian").CombinedOutput(); err != nil {
		t.Fatalf("debootstrap: %v\n%s\nfix: %s", err, out, fix)
	}
	if out, err := exec.Command("tar", "-C", d, "--numeric-owner", "-cf", p+".tmp", ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
	return p
}

// TestBuildDebianRealistic installs a package over the network with
// apt-get and compiles a Go program with Debian's golang in one stage,
// copied into a FROM scratch stage that runs it.
func TestBuildDebianRealistic(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Must("import", debianTar(t), "debian:bookworm")
	dir := e.context(t, "apt", map[string]string{
		"Dockerfile": "FROM debian:bookworm\nRUN apt-get update && apt-get install -y --no-install-recommends hello\nRUN hello > /hello.txt\n",
	})
	out := filepath.Join(e.Dir, "apt.tar")
	if r := e.Run("build", "-t", "apt:1", "--output", "type=tar,dest="+out, dir); r.Code != 0 {
		t.Fatalf("apt-get build: %s", r.Stderr)
	}
	f, _ := os.Open(out)
	files := tarFiles(t, f)
	f.Close()
	if files["hello.txt"] != "Hello, world!\n" {
		t.Errorf("hello.txt = %q", files["hello.txt"])
	}
	dir = e.context(t, "go", map[string]string{
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from scratch\") }\n",
		"Dockerfile": `FROM debian:bookworm AS build
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \
    rm -f /etc/apt/apt.conf.d/docker-clean; apt-get update && apt-get install -y --no-install-recommends golang-go
WORKDIR /src
COPY main.go .
RUN CGO_ENABLED=0 GOCACHE=/tmp/gocache go build -o /hello main.go

FROM scratch AS final
COPY --from=build /hello /hello
ENTRYPOINT ["/hello"]

FROM final AS check
RUN ["/hello"]
`,
	})
	r := e.Run("build", "--target", "check", dir)
	if r.Code != 0 || !strings.Contains(r.Stderr, "hello from scratch") {
		t.Fatalf("the scratch stage did not run the binary (exit %d):\n%s", r.Code, r.Stderr)
	}
	r = e.Run("build", "-t", "gohello:1", "--target", "final", dir)
	if r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	if n := stepLines(r.Stderr, "DONE"); n != 0 {
		t.Errorf("the final stage rebuilt %d steps after --target check built it", n)
	}
	if ep := e.Must("image", "inspect", "--format", "{{json .Config.Entrypoint}}", "gohello:1"); !strings.Contains(ep, "/hello") {
		t.Errorf("entrypoint %s", ep)
	}
}

func TestBuildPullsBaseImages(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, "", "")
	e := NewEnv(t)
	e.Busybox()
	ref := reg.Host + "/base/busybox:1"
	e.Must("push", "--tls-verify=false", "busybox", ref)
	e.Must("rmi", "busybox")
	dir := e.context(t, "ctx", map[string]string{"Dockerfile": "FROM " + ref + "\nRUN echo pulled > /p\n"})
	e.Fails([]string{"Dockerfile:1", "--pull=never"}, "build", "--pull=never", dir)
	r := e.Run("build", "--tls-verify=false", "-t", "p:1", dir)
	if r.Code != 0 {
		t.Fatalf("build with a base image to pull: %s", r.Stderr)
	}
	if r = e.Run("build", "--tls-verify=false", "--pull=always", dir); r.Code != 0 || stepLines(r.Stderr, "CACHED") != 1 {
		t.Errorf("--pull=always of an unchanged image must keep the cache (exit %d):\n%s", r.Code, r.Stderr)
	}
}
