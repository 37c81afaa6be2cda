package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testRegistry is Debian's docker-registry (the distribution registry)
// on 127.0.0.1, started for one test.
type testRegistry struct {
	Host string // 127.0.0.1:PORT
	dir  string
}

// startRegistry runs docker-registry with a private storage directory;
// with user set, it demands that user and password (htpasswd, bcrypt).
func startRegistry(t *testing.T, user, password string) *testRegistry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal("docker-registry not found: run 'make test-deps' as root (apt-get install docker-registry)")
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	auth := ""
	if user != "" {
		htpasswd, err := exec.LookPath("htpasswd")
		if err != nil {
			t.Fatal("htpasswd not found: run 'make test-deps' as root (apt-get install apache2-utils)")
		}
		out, err := exec.Command(htpasswd, "-Bbn", user, password).Output()
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "htpasswd"), out, 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: nook-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "data"), host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry did not answer on %s: %v\n%s", host, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &testRegistry{Host: host, dir: dir}
}

func skopeo(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo not found: run 'make test-deps' as root (apt-get install skopeo)")
	}
	cmd := exec.Command(bin, args...)
	// A private home, runtime dir and credentials file: skopeo must not
	// read (or fail to read) the invoking user's.
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+tmp, "XDG_RUNTIME_DIR="+tmp, "REGISTRY_AUTH_FILE="+filepath.Join(tmp, "auth.json"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func policyFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(p, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var digestLine = regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`)

// TestRegistryRoundTripWithSkopeo pushes with nook, inspects and copies
// with skopeo, pulls back with nook: the digests agree throughout.
func TestRegistryRoundTripWithSkopeo(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, "", "")
	e := NewEnv(t)
	e.Busybox()
	ref := reg.Host + "/team/busybox:1"
	df := filepath.Join(e.Dir, "digest.txt")
	e.Must("push", "busybox", ref, "--tls-verify=false", "--digestfile", df)
	pushed, err := os.ReadFile(df)
	if err != nil || !strings.HasPrefix(string(pushed), "sha256:") {
		t.Fatalf("digest file: %q, %v", pushed, err)
	}
	var insp struct{ Digest string }
	out := skopeo(t, "--policy", policyFile(t), "inspect", "--tls-verify=false", "docker://"+ref)
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	if insp.Digest != string(pushed) {
		t.Fatalf("skopeo sees %s, nook pushed %s", insp.Digest, pushed)
	}
	copyRef := reg.Host + "/other/copy:2"
	skopeo(t, "--policy", policyFile(t), "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+ref, "docker://"+copyRef)

	// Pull into an empty store.
	e2 := NewEnv(t)
	r := e2.Run("pull", copyRef, "--tls-verify=false")
	if r.Code != 0 {
		t.Fatalf("pull: %s", r.Stderr)
	}
	m := digestLine.FindStringSubmatch(r.Stdout)
	if m == nil || m[1] != string(pushed) {
		t.Fatalf("pull printed %q, want digest %s", r.Stdout, pushed)
	}
	if last := lastLine(r.Stdout); last != copyRef {
		t.Fatalf("pull's last line %q, want %s", last, copyRef)
	}
	idA := strings.TrimSpace(e.Must("images", "-q", "--no-trunc", "busybox"))
	idB := strings.TrimSpace(e2.Must("images", "-q", "--no-trunc", copyRef))
	if idA == "" || idA != idB {
		t.Fatalf("image IDs differ: pushed %q, pulled %q", idA, idB)
	}
	// Pushed back unchanged: the same digest, nothing uploaded.
	df2 := filepath.Join(e2.Dir, "d2.txt")
	e2.Must("push", "--digestfile", df2, copyRef, reg.Host+"/third/x:3")
	if again, _ := os.ReadFile(df2); string(again) != string(pushed) {
		t.Fatalf("pushing the pulled image gave %s, want %s", again, pushed)
	}
	// A second push of the same image is cheap: nothing compressed.
	start := time.Now()
	e.Must("push", "-q", "busybox", ref)
	t.Logf("second push: %v", time.Since(start))
	// By digest, verified.
	e3 := NewEnv(t)
	out = e3.Must("pull", "-q", reg.Host+"/team/busybox@"+string(pushed))
	if lastLine(out) != reg.Host+"/team/busybox@"+string(pushed) {
		t.Fatalf("pull by digest printed %q", out)
	}
	e3.Fails([]string{"manifest unknown"}, "pull", "-q", reg.Host+"/team/busybox:nope")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestRegistryAuth: htpasswd (bcrypt) registry; no credentials, wrong and
// right passwords, login file mode, logout.
func TestRegistryAuth(t *testing.T) {
	t.Parallel()
	const user, pass = "nookuser", "s3cret-Pa55word"
	reg := startRegistry(t, user, pass)
	e := NewEnv(t)
	authFile := filepath.Join(e.Dir, "auth", "config.json")
	e.Setenv("REGISTRY_AUTH_FILE", authFile)
	e.Busybox()
	ref := reg.Host + "/team/busybox:1"
	want := "authentication required for " + reg.Host + ": run nook login " + reg.Host
	e.Fails([]string{want}, "push", "busybox", ref)
	e.Fails([]string{want}, "pull", ref)

	r := e.RunIn("wrong-password\n", "login", "-u", user, "--password-stdin", reg.Host)
	if r.Code == 0 {
		t.Fatal("login with a wrong password succeeded")
	}
	if strings.Contains(r.Stdout+r.Stderr, "wrong-password") {
		t.Fatalf("login printed the password: %s %s", r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(authFile); err == nil {
		t.Fatal("a failed login wrote the credentials file")
	}
	r = e.RunIn(pass+"\n", "--log-level", "debug", "login", "-u", user, "--password-stdin", reg.Host)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Login Succeeded") {
		t.Fatalf("login: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout+r.Stderr, pass) {
		t.Fatal("login printed the password")
	}
	fi, err := os.Stat(authFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v; want 0600", err, fi)
	}
	e.Must("push", "busybox", ref)
	e2 := NewEnv(t)
	e2.Setenv("REGISTRY_AUTH_FILE", authFile)
	e2.Must("pull", ref)
	r = e2.Run("--log-level", "debug", "pull", ref)
	if strings.Contains(r.Stdout+r.Stderr, pass) {
		t.Fatal("pull at debug level printed the password")
	}
	e.Must("logout", reg.Host)
	e2.Fails([]string{want}, "pull", ref)
	e.Fails([]string{"not logged in"}, "logout", reg.Host)
}

// randomLayerTar is a root filesystem with one file of random bytes.
func randomLayerTar(t *testing.T, dir string, size int) string {
	t.Helper()
	p := filepath.Join(dir, "random.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "random", Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, rand.Reader, int64(size)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPullKilledThenAgain: kill -9 during a pull, then pull again; images
// never shows a half-pulled image.
func TestPullKilledThenAgain(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, "", "")
	e := NewEnv(t)
	e.Must("import", randomLayerTar(t, e.Dir, 48<<20), "big")
	ref := reg.Host + "/team/big:1"
	e.Must("push", "-q", "big", ref)

	e2 := NewEnv(t)
	for _, delay := range []time.Duration{30 * time.Millisecond, 120 * time.Millisecond, 300 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, nookBin, "pull", "-q", ref)
		cmd.Env = e2.env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cancel()
		out := e2.Must("images", "--format", "{{.Repository}}:{{.Tag}}")
		if strings.TrimSpace(out) != "" && strings.TrimSpace(out) != ref {
			t.Fatalf("after kill -9: images shows %q", out)
		}
	}
	e2.Must("pull", "-q", ref)
	out := e2.Must("images", "--format", "{{.Repository}}:{{.Tag}}")
	if strings.TrimSpace(out) != ref {
		t.Fatalf("after the second pull: images shows %q", out)
	}
	// The same layer does not come twice.
	e2.Must("image", "prune", "-f")
}

// TestPullThroughRegistriesConf: short names and a rewritten prefix
// (quay.io -> the local registry) from a registries.conf.
func TestPullThroughRegistriesConf(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t, "", "")
	e := NewEnv(t)
	e.Busybox()
	e.Must("push", "-q", "busybox", reg.Host+"/library/tool:1")
	conf := filepath.Join(e.Dir, "registries.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`unqualified-search-registries = ["%s"]

[[registry]]
prefix = "quay.io/acme"
location = "%s/library"
insecure = true
`, reg.Host, reg.Host)), 0o644); err != nil {
		t.Fatal(err)
	}
	e2 := NewEnv(t)
	e2.Setenv("NOOK_REGISTRIES_CONF", conf)
	if out := e2.Must("pull", "-q", "library/tool:1"); lastLine(out) != reg.Host+"/library/tool:1" {
		t.Fatalf("short name pulled as %q", out)
	}
	if out := e2.Must("pull", "-q", "quay.io/acme/tool:1"); lastLine(out) != "quay.io/acme/tool:1" {
		t.Fatalf("rewritten prefix pulled as %q", out)
	}
	bad := filepath.Join(e.Dir, "bad.conf")
	os.WriteFile(bad, []byte("unqualified-serch-registries = []\n"), 0o644)
	e3 := NewEnv(t)
	e3.Setenv("NOOK_REGISTRIES_CONF", bad)
	e3.Fails([]string{"unknown key", "unqualified-serch-registries"}, "pull", "x")
}

// TestSaveLoad: every archive format round-trips, also through stdin.
func TestSaveLoad(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	id := strings.TrimSpace(e.Must("images", "-q", "--no-trunc", "busybox"))
	for _, format := range []string{"docker-archive", "oci-archive", "oci-dir"} {
		out := filepath.Join(e.Dir, "busybox-"+format)
		e.Must("save", "--format", format, "-o", out, "busybox")
		e2 := NewEnv(t)
		got := e2.Must("load", "-i", out)
		if !strings.Contains(got, "Loaded image: busybox:latest") {
			t.Fatalf("%s: load printed %q", format, got)
		}
		if got := strings.TrimSpace(e2.Must("images", "-q", "--no-trunc", "busybox")); got != id {
			t.Fatalf("%s: loaded %s, saved %s", format, got, id)
		}
		if format == "docker-archive" {
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			e3 := NewEnv(t)
			if got := e3.RunIn(string(data), "load"); got.Code != 0 || !strings.Contains(got.Stdout, "busybox:latest") {
				t.Fatalf("load from stdin: %d %s %s", got.Code, got.Stdout, got.Stderr)
			}
		}
	}
}

// writeArchiveTar writes entries (name -> content; "->target" makes a symlink).
func writeArchiveTar(t *testing.T, p string, entries [][2]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, en := range entries {
		hdr := &tar.Header{Name: en[0], Mode: 0o644, Size: int64(len(en[1])), Typeflag: tar.TypeReg}
		if target, ok := strings.CutPrefix(en[1], "->"); ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, target, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			io.WriteString(tw, en[1])
		}
	}
	tw.Close()
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func layerTar(t *testing.T, entries [][2]string) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "layer.tar")
	writeArchiveTar(t, p, entries)
	data, _ := os.ReadFile(p)
	return string(data), digestHex(data)
}

// TestLoadBadArchives: paths out of the archive, missing files, links out,
// a truncated archive and a layer with ../ entries are refused or
// contained; nothing half-loaded shows in images.
func TestLoadBadArchives(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	outside := filepath.Join(workDir, fmt.Sprintf("escaped-%d", time.Now().UnixNano()))
	layer, diff := layerTar(t, [][2]string{{"etc/ok", "fine"}, {"../../../../../../.." + outside, "escaped"}})
	cfg := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}`, diff)
	cases := []struct {
		name    string
		entries [][2]string
		want    string
	}{
		{"config outside", [][2]string{{"manifest.json", `[{"Config":"../../etc/passwd","RepoTags":["bad:1"],"Layers":["l.tar"]}]`}, {"l.tar", layer}}, "outside the archive"},
		{"missing layer", [][2]string{{"manifest.json", `[{"Config":"c.json","RepoTags":["bad:1"],"Layers":["nope.tar"]}]`}, {"c.json", cfg}}, "does not contain"},
		{"link out", [][2]string{{"manifest.json", `[{"Config":"c.json","RepoTags":["bad:1"],"Layers":["l.tar"]}]`}, {"c.json", cfg}, {"l.tar", "->/etc/passwd"}}, "outside the archive"},
		{"wrong diff id", [][2]string{{"manifest.json", `[{"Config":"c.json","RepoTags":["bad:1"],"Layers":["l.tar"]}]`}, {"c.json", strings.Replace(cfg, diff, strings.Repeat("0", 64), 1)}, {"l.tar", layer}}, "does not match"},
	}
	for _, c := range cases {
		p := filepath.Join(e.Dir, strings.ReplaceAll(c.name, " ", "-")+".tar")
		writeArchiveTar(t, p, c.entries)
		e.Fails([]string{c.want}, "load", "-i", p)
	}
	// Truncated.
	good := filepath.Join(e.Dir, "good.tar")
	writeArchiveTar(t, good, [][2]string{{"manifest.json", `[{"Config":"c.json","RepoTags":["dotdot:1"],"Layers":["l.tar"]}]`}, {"c.json", cfg}, {"l.tar", layer}})
	data, _ := os.ReadFile(good)
	trunc := filepath.Join(e.Dir, "trunc.tar")
	os.WriteFile(trunc, data[:len(data)/2], 0o644)
	e.Fails([]string{"truncated"}, "load", "-i", trunc)
	if out := e.Must("images", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("failed loads left images: %q", out)
	}
	// A layer with ../ entries: contained in the layer, never outside.
	r := e.Run("load", "-i", good)
	if _, err := os.Stat(outside); err == nil {
		t.Fatalf("a ../ entry of a layer was written outside the store: %s (load exit %d)", outside, r.Code)
	}
	if r.Code == 0 && !strings.Contains(e.Must("images"), "dotdot") {
		t.Fatal("load succeeded but the image is missing")
	}
}

func digestHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
