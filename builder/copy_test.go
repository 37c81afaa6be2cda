package builder

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

type tarEntry struct {
	name     string
	mode     int64
	uid, gid int
	data     string
	link     string
}

func runCopy(t *testing.T, rootfs, ctx string, spec *CopySpec) map[string]tarEntry {
	t.Helper()
	src := &source{root: ctx, context: true}
	sels, wild, err := selectionsFor(src, spec)
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1000, 0)
	job := &copyJob{spec: spec, rootfs: rootfs, sels: sels, wildcat: wild, epoch: &epoch, now: time.Now()}
	var buf bytes.Buffer
	if err := job.write(&buf); err != nil {
		t.Fatal(err)
	}
	out := map[string]tarEntry{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.ModTime.After(epoch) {
			t.Errorf("%s: time %v after the epoch", h.Name, h.ModTime)
		}
		b, _ := io.ReadAll(tr)
		out[strings.TrimSuffix(h.Name, "/")] = tarEntry{name: h.Name, mode: h.Mode, uid: h.Uid, gid: h.Gid, data: string(b), link: h.Linkname}
	}
	return out
}

func names(m map[string]tarEntry) string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, " ")
}

func TestCopyDestinationRules(t *testing.T) {
	rootfs, ctx := t.TempDir(), t.TempDir()
	writeTree(t, rootfs, map[string]string{"etc/passwd": "root:x:0:0::/root:/bin/sh\napp:x:1234:1234::/home/app:/bin/sh\n", "etc/group": "root:x:0:\nstaff:x:50:\n", "existing/.keep": ""})
	os.Chmod(filepath.Join(rootfs, "existing"), 0o700)
	os.Symlink("existing", filepath.Join(rootfs, "link"))
	writeTree(t, ctx, map[string]string{"f.txt": "f", "dir/a": "a", "dir/sub/b": "b"})
	os.Symlink("/etc/shadow", filepath.Join(ctx, "dir/abs"))

	// A file to a path that does not exist: that path is the file.
	got := runCopy(t, rootfs, ctx, &CopySpec{Sources: []string{"f.txt"}, Dest: "/new/name.txt", FromStage: -1})
	if got["new/name.txt"].data != "f" || got["new"].mode != 0o755 {
		t.Errorf("file to new path: %s", names(got))
	}
	// A file to an existing directory (no trailing slash): into it; the
	// directory keeps its mode.
	got = runCopy(t, rootfs, ctx, &CopySpec{Sources: []string{"f.txt"}, Dest: "/existing", FromStage: -1})
	if got["existing/f.txt"].data != "f" || got["existing"].mode != 0o700 {
		t.Errorf("file to existing dir: %s %+v", names(got), got["existing"])
	}
	// Through a symlink in the image: lands in its target.
	got = runCopy(t, rootfs, ctx, &CopySpec{Sources: []string{"f.txt"}, Dest: "/link/", FromStage: -1})
	if _, ok := got["existing/f.txt"]; !ok {
		t.Errorf("copy through an image symlink: %s", names(got))
	}
	// A directory: its contents; links copied as links; --chown by name
	// and --chmod.
	got = runCopy(t, rootfs, ctx, &CopySpec{Sources: []string{"dir"}, Dest: "/d", Chown: "app:staff", Chmod: "0640", FromStage: -1})
	if e := got["d/sub/b"]; e.data != "b" || e.uid != 1234 || e.gid != 50 || e.mode != 0o640 {
		t.Errorf("dir copy: %+v (%s)", e, names(got))
	}
	if got["d/abs"].link != "/etc/shadow" {
		t.Errorf("a symlink in the context must be copied as a link: %+v", got["d/abs"])
	}
	if _, ok := got["d/dir"]; ok {
		t.Errorf("a directory source copies its contents, not itself")
	}
	// --parents keeps the source directories.
	got = runCopy(t, rootfs, ctx, &CopySpec{Sources: []string{"dir/sub/b", "f.txt"}, Dest: "/p/", Parents: true, FromStage: -1})
	if got["p/dir/sub/b"].data != "b" || got["p/f.txt"].data != "f" {
		t.Errorf("--parents: %s", names(got))
	}
	// --chown with a uid only: gid = uid.
	got = runCopy(t, rootfs, ctx, &CopySpec{Sources: []string{"f.txt"}, Dest: "/x/", Chown: "42", FromStage: -1})
	if e := got["x/f.txt"]; e.uid != 42 || e.gid != 42 {
		t.Errorf("--chown=42: %+v", e)
	}
	// Unknown user: an error naming it.
	src := &source{root: ctx, context: true}
	sels, _, _ := selectionsFor(src, &CopySpec{Sources: []string{"f.txt"}})
	job := &copyJob{spec: &CopySpec{Dest: "/", Chown: "nobody9"}, rootfs: rootfs, sels: sels}
	if err := job.write(io.Discard); err == nil || !strings.Contains(err.Error(), "nobody9") {
		t.Errorf("unknown --chown user: %v", err)
	}
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
