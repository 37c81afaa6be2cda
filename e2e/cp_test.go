package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tarOf builds a tar stream from entries: "name" (directory, ends in /),
// "name=content" (file) or "name->target" (symlink).
func tarOf(t *testing.T, entries ...string) string {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Mode: 0o644, ModTime: time.Now()}
		switch {
		case strings.Contains(e, "->"):
			n, target, _ := strings.Cut(e, "->")
			h.Typeflag, h.Name, h.Linkname, h.Mode = tar.TypeSymlink, n, target, 0o777
		case strings.Contains(e, "="):
			n, content, _ := strings.Cut(e, "=")
			h.Typeflag, h.Name, h.Size = tar.TypeReg, n, int64(len(content))
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			tw.Write([]byte(content))
			continue
		default:
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, e, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return buf.String()
}

func tarNames(t *testing.T, s string) []string {
	var out []string
	tr := tar.NewReader(strings.NewReader(s))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		out = append(out, h.Name)
	}
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCp(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.removeContainersAtEnd()
	e.Busybox()
	e.bgContainer("c", "-v", "vol:/data", "busybox", "sleep", "300")
	e.Must("exec", "c", "sh", "-c", "mkdir -p /d/sub && echo a > /d/f && echo b > /d/sub/g && echo v > /data/v && "+
		"ln -s / /evil && ln -s ../../../../.. /evil2 && ln -s /etc/passwd /plink")
	out := filepath.Join(e.Dir, "out")
	os.MkdirAll(out, 0o755)
	o := func(p string) string { return filepath.Join(out, p) }

	// From the container, docker's rules for files, directories and "/.".
	e.Must("cp", "c:/d/f", o("f1"))
	if readFile(t, o("f1")) != "a\n" {
		t.Fatal("file to a new file")
	}
	e.Must("cp", "c:/d", out)
	if readFile(t, o("d/sub/g")) != "b\n" {
		t.Fatal("directory into a directory")
	}
	e.Must("cp", "c:/d", o("newd"))
	if readFile(t, o("newd/f")) != "a\n" {
		t.Fatal("directory to a new directory")
	}
	os.MkdirAll(o("merge"), 0o755)
	e.Must("cp", "c:/d/.", o("merge"))
	if readFile(t, o("merge/f")) != "a\n" {
		t.Fatal("directory content (/.) into a directory")
	}
	e.Must("cp", "c:/data/v", out) // a volume
	if readFile(t, o("v")) != "v\n" {
		t.Fatal("file from a volume")
	}
	e.Fails([]string{"destination directory must exist"}, "cp", "c:/d/f", o("nodir")+"/")
	e.Fails([]string{"not a directory"}, "cp", "c:/d/f/", out)
	e.Fails([]string{"cannot copy a directory to a file"}, "cp", "c:/d", o("f1"))
	e.Fails([]string{"could not find the file /nonexist in container c"}, "cp", "c:/nonexist", out)
	// Links in the container resolve in the container: to / and to ../..
	e.Must("cp", "c:/evil/etc/passwd", o("p"))
	if !strings.Contains(readFile(t, o("p")), "user:x:1000:1000") {
		t.Fatal("/evil/etc/passwd was not the container's passwd")
	}
	e.Must("cp", "c:/evil2/etc/hostname", o("h"))
	host, _ := os.Hostname()
	if got := strings.TrimSpace(readFile(t, o("h"))); got == host || len(got) != 12 {
		t.Fatalf("/evil2/etc/hostname gave %q (host: %q)", got, host)
	}
	// A link is copied as a link; -L copies what it points to.
	e.Must("cp", "c:/evil", out)
	if l, err := os.Readlink(o("evil")); err != nil || l != "/" {
		t.Fatalf("link copied as %q %v", l, err)
	}
	e.Must("cp", "-L", "c:/plink", o("pl"))
	if fi, err := os.Lstat(o("pl")); err != nil || !fi.Mode().IsRegular() || !strings.Contains(readFile(t, o("pl")), "user:x:1000") {
		t.Fatalf("-L: %v %v", fi, err)
	}
	// "-": a tar stream on standard output.
	if names := tarNames(t, e.Must("cp", "c:/d", "-")); strings.Join(names, " ") != "d/ d/f d/sub/ d/sub/g" {
		t.Fatalf("cp to -: %q", names)
	}

	// Into the container.
	in := filepath.Join(e.Dir, "in")
	os.MkdirAll(filepath.Join(in, "tree/sub"), 0o755)
	os.WriteFile(filepath.Join(in, "hf"), []byte("host\n"), 0o644)
	os.WriteFile(filepath.Join(in, "tree/sub/x"), []byte("x\n"), 0o644)
	marker := fmt.Sprintf("nook-cp-escape-%d", time.Now().UnixNano())
	os.WriteFile(filepath.Join(in, marker), []byte("escaped\n"), 0o644)
	e.Must("cp", filepath.Join(in, marker), "c:/evil/tmp/")
	e.Must("cp", filepath.Join(in, marker), "c:/evil2/")
	if _, err := os.Stat("/tmp/" + marker); err == nil {
		t.Fatal("a copy through /evil wrote to the host's /tmp")
	}
	if _, err := os.Stat("/" + marker); err == nil {
		t.Fatal("a copy through /evil2 wrote to the host's /")
	}
	if out := e.Must("exec", "c", "cat", "/tmp/"+marker, "/"+marker); out != "escaped\nescaped\n" {
		t.Fatalf("copies through links in the container: %q", out)
	}
	e.Must("cp", filepath.Join(in, "tree"), "c:/newtree")
	e.Must("cp", filepath.Join(in, "tree"), "c:/newtree")
	e.Must("cp", filepath.Join(in, "tree")+"/.", "c:/merged/")
	if out := e.Must("exec", "c", "sh", "-c", "cat /newtree/sub/x /newtree/tree/sub/x /merged/sub/x"); out != "x\nx\nx\n" {
		t.Fatalf("directories into the container: %q", out)
	}
	e.Fails([]string{"cannot copy a directory to a file"}, "cp", filepath.Join(in, "tree"), "c:/d/f")
	e.Fails([]string{"could not find the file"}, "cp", filepath.Join(in, "nonexist"), "c:/tmp/")
	// A tar on standard input, into a directory only; its own links and
	// ../ entries stay inside the container.
	if r := e.RunIn(tarOf(t, "fromtar=t\n"), "cp", "-", "c:/tmp"); r.Code != 0 {
		t.Fatalf("cp - : %s", r.Stderr)
	}
	if out := e.Must("exec", "c", "cat", "/tmp/fromtar"); out != "t\n" {
		t.Fatalf("cp -: %q", out)
	}
	e.Fails([]string{"must be a directory"}, "cp", "-", "c:/d/f")
	evil := tarOf(t, "esc->/", "esc/tmp/"+marker+"-tar=pwned\n", "../../"+marker+"-up=pwned\n")
	e.RunIn(evil, "cp", "-", "c:/tmp")
	for _, p := range []string{"/tmp/" + marker + "-tar", "/" + marker + "-up", filepath.Dir(e.Dir) + "/" + marker + "-up"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("a tar with links and ../ entries wrote %s on the host", p)
		}
	}
	// -a: owned by the container's user; without: as the archive says.
	e.bgContainer("u", "-u", "user", "busybox", "sleep", "300")
	e.Must("cp", filepath.Join(in, "hf"), "u:/tmp/plain")
	e.Must("cp", "-a", filepath.Join(in, "hf"), "u:/tmp/archive")
	if out := e.Must("exec", "u", "sh", "-c", "stat -c '%u:%g' /tmp/plain /tmp/archive"); out != "0:0\n1000:1000\n" {
		t.Fatalf("owners: %q", out)
	}

	// A stopped container, and a read-only one.
	e.Must("run", "--name", "stopped", "--read-only", "-v", "rw:/rw", "busybox", "sh", "-c", "echo s > /rw/s")
	e.Must("cp", "stopped:/rw/s", o("s"))
	if readFile(t, o("s")) != "s\n" {
		t.Fatal("copy from a stopped container's volume")
	}
	e.Must("cp", "stopped:/etc/group", o("g"))
	e.Fails([]string{"read-only"}, "cp", filepath.Join(in, "hf"), "stopped:/tmp/")
	e.Must("cp", filepath.Join(in, "hf"), "stopped:/rw/")
	e.Must("run", "--name", "plain", "busybox", "true")
	e.Must("cp", filepath.Join(in, "hf"), "plain:/")
	e.Must("cp", "plain:/hf", o("back"))
	if readFile(t, o("back")) != "host\n" {
		t.Fatal("round trip through a stopped container")
	}
	if out := e.Must("ps", "-a", "--filter", "name=plain", "--format", "{{.State}}"); out != "exited\n" {
		t.Fatalf("cp changed the container's state: %q", out)
	}
}

func TestExportCommit(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.removeContainersAtEnd()
	e.Busybox()
	e.Must("run", "--name", "ch", "-e", "K=v", "-w", "/work", "--label", "l=1", "-u", "0", "--stop-signal", "USR1",
		"busybox", "sh", "-c", "echo x > /work/new; rm /bin/vi; mkdir /work/d")
	// export: the whole file system, which import turns into an image again.
	tarPath := filepath.Join(e.Dir, "fs.tar")
	e.Must("export", "-o", tarPath, "ch")
	names := strings.Join(tarNames(t, readFile(t, tarPath)), " ") + " "
	for _, want := range []string{"work/new", "etc/passwd", "bin/busybox"} {
		if !strings.Contains(names, want) {
			t.Fatalf("export lacks %s", want)
		}
	}
	if strings.Contains(names, "bin/vi ") {
		t.Fatal("export has a file the container removed")
	}
	if stdout := e.Must("export", "ch"); !strings.Contains(strings.Join(tarNames(t, stdout), " "), "work/new") {
		t.Fatal("export to standard output")
	}
	e.Must("import", tarPath, "exported")
	if out := e.Must("run", "--rm", "exported", "cat", "/work/new"); out != "x\n" {
		t.Fatalf("imported export: %q", out)
	}
	// commit: a layer with the changes; the config with the run settings
	// and the changes; a history entry.
	id := strings.TrimSpace(e.Must("commit", "-m", "snapshot", "-a", "Ann <ann@example.com>", "-c", "ENV ADDED=1", "-c", "EXPOSE 8080", "ch", "img:1"))
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("commit printed %q", id)
	}
	if out := e.Must("run", "--rm", "img:1", "sh", "-c", "cat new; ls /bin/vi 2>&1; id -u; echo $K $ADDED; pwd"); out != "x\nls: /bin/vi: No such file or directory\n0\nv 1\n/work\n" {
		t.Fatalf("committed image: %q", out)
	}
	var cfg []struct {
		Author string
		Config struct {
			Cmd, Env     []string
			WorkingDir   string
			User         string
			Labels       map[string]string
			ExposedPorts map[string]any
			StopSignal   string
		}
		RootFS  struct{ Layers []string }
		History []struct {
			Comment, Author string
			CreatedBy       string `json:"created_by"`
		}
	}
	if err := json.Unmarshal([]byte(e.Must("image", "inspect", "img:1")), &cfg); err != nil || len(cfg) != 1 {
		t.Fatalf("image inspect: %v", err)
	}
	c := cfg[0]
	h := c.History[len(c.History)-1]
	if c.Author != "Ann <ann@example.com>" || c.Config.WorkingDir != "/work" || c.Config.User != "0" || c.Config.Labels["l"] != "1" ||
		c.Config.StopSignal != "USR1" || c.Config.ExposedPorts["8080/tcp"] == nil || len(c.RootFS.Layers) != 2 ||
		h.Comment != "snapshot" || h.Author != "Ann <ann@example.com>" || !strings.HasPrefix(h.CreatedBy, "sh -c echo x") ||
		strings.Join(c.Config.Cmd, " ") != "sh -c echo x > /work/new; rm /bin/vi; mkdir /work/d" {
		t.Fatalf("committed config: %+v", c)
	}
	// Nothing changed: no new layer. A running container, paused meanwhile.
	e.Must("create", "--name", "same", "busybox", "true")
	e.Must("commit", "same", "img:same")
	if out := e.Must("image", "inspect", "--format", "{{len .RootFS.Layers}}", "img:same"); out != "1\n" {
		t.Fatalf("layers of an unchanged container's image: %q", out)
	}
	e.bgContainer("live", "busybox", "sh", "-c", "echo live > /live; sleep 300")
	e.Must("exec", "live", "sh", "-c", "test -f /live")
	e.Must("commit", "--pause", "live", "img:live")
	if out := e.Must("run", "--rm", "img:live", "cat", "/live"); out != "live\n" {
		t.Fatalf("commit of a running container: %q", out)
	}
	if out := e.Must("exec", "live", "sh", "-c", "grep ^State /proc/1/status"); !strings.Contains(out, "S (sleeping)") {
		t.Fatalf("the container was not resumed: %q", out)
	}
	e.Fails([]string{"invalid reference format"}, "commit", "ch", "Bad:Name:x")
	e.Fails([]string{"no such container: nope"}, "commit", "nope")
}
