package e2e

// The foundation's "bad input and faults" list: hostile and broken
// tarballs, unknown, ambiguous and invalid names, concurrent invocations,
// kill -9 during an import. Holder faults are in holder_test.go.

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tarEntry is one entry of a tarball the tests craft.
type tarEntry struct {
	Name     string
	Type     byte // tar.TypeReg when 0
	Body     string
	Linkname string
	Mode     int64
	UID, GID int
}

// writeTar writes entries to path with archive/tar, so that hostile names
// ("../x", absolute links) are kept exactly as given.
func writeTar(t testing.TB, path string, entries []tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, en := range entries {
		h := &tar.Header{Name: en.Name, Typeflag: en.Type, Linkname: en.Linkname, Mode: en.Mode,
			Uid: en.UID, Gid: en.GID, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(en.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("writing tar header %s: %v", en.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, en.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tinyTar is a one-file root filesystem: fast to import many times.
func tinyTar(t testing.TB, dir, name, content string) string {
	return writeTar(t, filepath.Join(dir, name), []tarEntry{
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/hello", Body: content},
	})
}

// storedLayer is what the tests read of the store's layer records.
type storedLayer struct {
	ID    string          `json:"id"`
	Flags map[string]any  `json:"flags"`
	Names []string        `json:"names"`
	Extra json.RawMessage `json:"-"`
}

// layers reads the layer records of the env's store straight from disk
// (the records belong to the user, also when rootless; the layer contents
// belong to subordinate ids).
func (e *Env) layers() []storedLayer {
	e.t.Helper()
	var all []storedLayer
	for _, d := range []string{"overlay-layers", "vfs-layers"} {
		b, err := os.ReadFile(filepath.Join(e.Root, d, "layers.json"))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			e.t.Fatalf("reading the layer records: %v", err)
		}
		var ls []storedLayer
		if len(bytes.TrimSpace(b)) > 0 {
			if err := json.Unmarshal(b, &ls); err != nil {
				e.t.Fatalf("decoding %s/layers.json: %v\n%s", d, err, b)
			}
		}
		all = append(all, ls...)
	}
	return all
}

// inLayers reports whether a file of that base name exists in any layer
// directory of the env's store.
func (e *Env) inLayers(name string) bool {
	e.t.Helper()
	found := false
	for _, d := range []string{"overlay", "vfs/dir"} {
		_ = filepath.WalkDir(filepath.Join(e.Root, d), func(p string, de os.DirEntry, err error) error {
			if err == nil && de.Name() == name {
				found = true
				return filepath.SkipAll
			}
			return nil
		})
	}
	return found
}

// imageIDs lists the full IDs of the env's images.
func (e *Env) imageIDs() []string {
	e.t.Helper()
	var ids []string
	for _, l := range strings.Fields(e.Must("images", "-q", "--no-trunc")) {
		ids = append(ids, strings.TrimPrefix(l, "sha256:"))
	}
	sort.Strings(ids)
	return ids
}

// topLayers is the set of top layer IDs the env's images use, read from
// the image records.
func (e *Env) topLayers() map[string]bool {
	e.t.Helper()
	out := map[string]bool{}
	for _, d := range []string{"overlay-images", "vfs-images"} {
		b, err := os.ReadFile(filepath.Join(e.Root, d, "images.json"))
		if err != nil {
			continue
		}
		var imgs []struct {
			Layer string `json:"layer"`
		}
		if err := json.Unmarshal(b, &imgs); err != nil {
			e.t.Fatalf("decoding images.json: %v", err)
		}
		for _, im := range imgs {
			out[im.Layer] = true
		}
	}
	return out
}

// assertConsistent checks that every image can be inspected and every
// layer on record belongs to an image (no orphans, no incomplete layers).
func (e *Env) assertConsistent() {
	e.t.Helper()
	ids := e.imageIDs()
	if len(ids) > 0 {
		e.Must(append([]string{"image", "inspect", "--format", "{{.Id}}"}, ids...)...)
	}
	tops := e.topLayers()
	for _, l := range e.layers() {
		if !tops[l.ID] {
			e.t.Errorf("layer %s belongs to no image (flags %v)", l.ID, l.Flags)
		}
	}
	if n := len(e.layers()); n != len(tops) {
		e.t.Errorf("%d layers for %d image top layers", n, len(tops))
	}
}

// hostFile remembers what a host file looked like, to prove it untouched.
type hostFile struct {
	path  string
	data  []byte
	nlink uint64
	mtime time.Time
	mode  os.FileMode
}

func snapshot(t testing.TB, path string) hostFile {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return hostFile{path: path, data: data, nlink: fi.Sys().(*syscall.Stat_t).Nlink, mtime: fi.ModTime(), mode: fi.Mode()}
}

func (h hostFile) assertUntouched(t testing.TB) {
	t.Helper()
	now := snapshot(t, h.path)
	if !bytes.Equal(now.data, h.data) || now.nlink != h.nlink || !now.mtime.Equal(h.mtime) || now.mode != h.mode {
		t.Errorf("host file %s changed: nlink %d->%d, mode %v->%v, mtime %v->%v, content equal %v",
			h.path, h.nlink, now.nlink, h.mode, now.mode, h.mtime, now.mtime, bytes.Equal(now.data, h.data))
	}
}

// dirEntries lists a host directory, to prove nothing was added to it.
func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestImportHostileTarballs(t *testing.T) {
	t.Parallel()
	// Paths from a layer directory up to the host: deep enough for any store.
	up := strings.Repeat("../", 40)
	cases := []struct {
		name    string
		entries func(host string) []tarEntry
		// raw, when set, writes these bytes instead of a tarball.
		raw func(t *testing.T) []byte
		// mustFail: the import must be refused (else a contained result is
		// also acceptable).
		mustFail bool
		// contained: file names that, if the import succeeds, must have
		// been written inside the layer instead.
		contained []string
	}{
		{
			name:     "corrupt",
			raw:      func(*testing.T) []byte { b := make([]byte, 64<<10); rand.New(rand.NewSource(1)).Read(b); return b },
			mustFail: true,
		},
		{
			name: "truncated",
			raw: func(t *testing.T) []byte {
				b, err := os.ReadFile(BusyboxTar(t))
				if err != nil {
					t.Fatal(err)
				}
				// Cut inside the busybox binary's data.
				return b[:len(b)/2+100]
			},
			mustFail: true,
		},
		{
			name: "dotdot",
			entries: func(host string) []tarEntry {
				return []tarEntry{
					{Name: "etc/", Type: tar.TypeDir},
					{Name: up + strings.TrimPrefix(host, "/") + "/escaped", Body: "escaped via ..\n"},
					{Name: "etc/../../../" + "escaped2", Body: "escaped via ..\n"},
				}
			},
			contained: []string{"escaped", "escaped2"},
		},
		{
			name: "absolute-symlink-write",
			entries: func(host string) []tarEntry {
				return []tarEntry{
					{Name: "link", Type: tar.TypeSymlink, Linkname: host},
					{Name: "link/pwned", Body: "written through an absolute symlink\n"},
					{Name: "rel", Type: tar.TypeSymlink, Linkname: up + strings.TrimPrefix(host, "/")},
					{Name: "rel/pwned-rel", Body: "written through a relative symlink\n"},
				}
			},
			contained: []string{"pwned", "pwned-rel"},
		},
		{
			name: "hardlink-to-host-file",
			entries: func(host string) []tarEntry {
				return []tarEntry{
					{Name: "etc/", Type: tar.TypeDir},
					{Name: "etc/passwd-link", Type: tar.TypeLink, Linkname: "/etc/passwd"},
					{Name: "canary-link", Type: tar.TypeLink, Linkname: host + "/canary"},
					{Name: "canary-rel", Type: tar.TypeLink, Linkname: up + strings.TrimPrefix(host, "/") + "/canary"},
				}
			},
		},
		{
			name: "hardlink-then-write-through-it",
			entries: func(host string) []tarEntry {
				return []tarEntry{
					{Name: "canary-link", Type: tar.TypeLink, Linkname: host + "/canary"},
					// A write through the link, had it been made.
					{Name: "canary-link", Body: "overwritten\n"},
				}
			},
		},
		{
			name: "symlink-then-hardlink-through-it",
			entries: func(host string) []tarEntry {
				return []tarEntry{
					{Name: "hostdir", Type: tar.TypeSymlink, Linkname: host},
					{Name: "grab", Type: tar.TypeLink, Linkname: "hostdir/canary"},
					{Name: "grab", Body: "overwritten\n"},
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := NewEnv(t)
			host := filepath.Join(e.Dir, "host")
			if err := os.MkdirAll(host, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(host, "canary"), []byte("canary\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			canary := snapshot(t, filepath.Join(host, "canary"))
			passwd := snapshot(t, "/etc/passwd")
			before := dirEntries(t, host)
			beforeParent := dirEntries(t, e.Dir)
			src := filepath.Join(e.Dir, tc.name+".tar")
			if tc.raw != nil {
				if err := os.WriteFile(src, tc.raw(t), 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				writeTar(t, src, tc.entries(host))
			}
			r := e.Run("import", src, "hostile:"+tc.name)
			t.Logf("import: exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
			if tc.mustFail && r.Code == 0 {
				t.Fatalf("importing a %s tarball succeeded", tc.name)
			}
			if r.Code != 0 {
				if !strings.Contains(r.Stderr, "importing "+src) {
					t.Errorf("the error does not name the tarball %s: %q", src, r.Stderr)
				}
				if r.Code != 125 {
					t.Errorf("exit code %d, want 125", r.Code)
				}
				if ids := e.imageIDs(); len(ids) != 0 {
					t.Errorf("a failed import left images %v", ids)
				}
				if ls := e.layers(); len(ls) != 0 {
					t.Errorf("a failed import left layers %+v", ls)
				}
			} else {
				e.assertConsistent()
				for _, f := range tc.contained {
					if !e.inLayers(f) {
						t.Errorf("the import succeeded but %s is not inside the layer", f)
					}
				}
			}
			canary.assertUntouched(t)
			passwd.assertUntouched(t)
			if after := dirEntries(t, host); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("files appeared on the host in %s: %v (before: %v)", host, after, before)
			}
			if after := dirEntries(t, e.Dir); len(after) != len(beforeParent)+1 { // + the tarball
				t.Errorf("files appeared on the host in %s: %v (before: %v)", e.Dir, after, beforeParent)
			}
			for _, p := range []string{"/escaped", "/escaped2", "/pwned", "/pwned-rel"} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was written on the host", p)
				}
			}
		})
	}
}

func TestUnknownAmbiguousInvalidNames(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	for _, args := range [][]string{
		{"image", "inspect", "nosuchimage"},
		{"inspect", "nosuchimage:2"},
		{"rmi", "nosuchimage"},
		{"tag", "nosuchimage", "other"},
		{"images", "--filter", "before=nosuchimage"},
	} {
		r := e.Fails([]string{"nosuchimage"}, args...)
		if low := strings.ToLower(r.Stderr); !strings.Contains(low, "not found") && !strings.Contains(low, "no such") {
			t.Errorf("nook %v: %q does not say it was not found", args, r.Stderr)
		}
	}
	// Invalid references: the error names the reference.
	for _, tc := range []struct {
		args []string
		bad  string
	}{
		{[]string{"tag", "busybox", "Bad/UPPER:case"}, "Bad/UPPER:case"},
		{[]string{"tag", "busybox", "a:b:c"}, "a:b:c"},
		{[]string{"import", BusyboxTar(t), "UPPER"}, "UPPER"},
		{[]string{"image", "inspect", "Busy_Box::"}, "Busy_Box::"},
		{[]string{"rmi", "x@sha256:nothex"}, "x@sha256:nothex"},
	} {
		r := e.Fails([]string{tc.bad}, tc.args...)
		if !strings.Contains(r.Stderr, "invalid reference") {
			t.Errorf("nook %v: %q does not say the reference is invalid", tc.args, r.Stderr)
		}
	}
	if ids := e.imageIDs(); len(ids) != 1 {
		t.Fatalf("failed commands changed the store: images %v", ids)
	}

	// Ambiguous ID prefixes: import variations until two IDs share their
	// first character (at most 17 imports, by the pigeonhole principle).
	tarball := tinyTar(t, e.Dir, "tiny.tar", "hello\n")
	byFirst := map[byte]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		if i > 17 {
			t.Fatal("no two image IDs share a first character after 17 imports")
		}
		id := strings.TrimPrefix(strings.TrimSpace(e.Must("import", "--change", fmt.Sprintf("ENV N=%d", i), tarball)), "sha256:")
		if prev, ok := byFirst[id[0]]; ok {
			a, b = prev, id
		}
		byFirst[id[0]] = id
	}
	common := 0
	for common < len(a) && a[common] == b[common] {
		common++
	}
	prefix := a[:common]
	r := e.Fails([]string{"ambiguous", prefix, a[:12], b[:12]}, "image", "inspect", prefix)
	if r.Code != 1 {
		t.Errorf("ambiguous inspect exit %d, want 1", r.Code)
	}
	e.Fails([]string{"ambiguous", prefix}, "rmi", prefix)
	e.Fails([]string{"ambiguous", prefix}, "tag", prefix, "x:1")
	// One more character resolves it.
	if got := strings.TrimSpace(e.Must("image", "inspect", "--format", "{{.Id}}", a[:common+1])); got != "sha256:"+a {
		t.Errorf("inspect %s = %s, want sha256:%s", a[:common+1], got, a)
	}
}

func TestConcurrentInvocations(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	const workers, rounds = 8, 4
	tarballs := make([]string, workers)
	for w := range tarballs {
		tarballs[w] = tinyTar(t, e.Dir, fmt.Sprintf("w%d.tar", w), fmt.Sprintf("worker %d\n", w))
	}
	var wg sync.WaitGroup
	errs := make(chan string, workers*rounds*8)
	run := func(args ...string) Result {
		r := e.Run(args...)
		if r.Code != 0 {
			errs <- fmt.Sprintf("nook %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
		} else if strings.Contains(r.Stderr, "level=error") {
			errs <- fmt.Sprintf("nook %s: errors logged: %s", strings.Join(args, " "), r.Stderr)
		}
		return r
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				name := fmt.Sprintf("w%d:%d", w, i)
				run("import", "--change", fmt.Sprintf("ENV W=%d I=%d", w, i), tarballs[w], name)
				run("tag", name, fmt.Sprintf("localhost/t%d:%d", w, i))
				run("images")
				run("images", "--format", "json")
				run("image", "inspect", name)
				run("rmi", fmt.Sprintf("localhost/t%d:%d", w, i))
				if i < rounds-1 {
					run("rmi", name)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	// Each worker kept its last image.
	out := e.Must("images", "--format", "{{.Repository}}:{{.Tag}}")
	got := strings.Fields(out)
	sort.Strings(got)
	var want []string
	for w := 0; w < workers; w++ {
		want = append(want, fmt.Sprintf("w%d:%d", w, rounds-1))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("images after the concurrent run = %v, want %v", got, want)
	}
	e.assertConsistent()
}

// bigTar writes a root filesystem tarball of about size bytes (several
// files of pseudo-random data, so that extraction takes a while).
func bigTar(t testing.TB, path string, size int) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	rnd := rand.New(rand.NewSource(42))
	chunk := make([]byte, 1<<20)
	const perFile = 8 << 20
	for i := 0; i*perFile < size; i++ {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/f%03d", i), Mode: 0o644, Size: perFile, Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < perFile; n += len(chunk) {
			rnd.Read(chunk)
			if _, err := tw.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKillDuringImport(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	big := bigTar(t, filepath.Join(e.Dir, "big.tar"), 256<<20)
	// Kill at several moments: while the tar is being extracted (the
	// layer is staged and has no record yet), and just after its record
	// appears (before or after the image is recorded).
	for attempt, when := range []string{"100ms", "400ms", "record", "record+50ms"} {
		name := fmt.Sprintf("big:%d", attempt)
		cmd := exec.Command(nookBin, "import", big, name)
		cmd.Env = e.env
		cmd.Dir = e.Dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		before := len(e.layers())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if d, err := time.ParseDuration(when); err == nil {
			time.Sleep(d)
		} else {
			deadline := time.Now().Add(30 * time.Second)
			for len(e.layers()) == before && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			if when == "record+50ms" {
				time.Sleep(50 * time.Millisecond)
			}
		}
		_ = cmd.Process.Kill()
		err := cmd.Wait()
		t.Logf("attempt %d: killed at %s: %v %s", attempt, when, err, stderr.String())
		// The next invocation reads the store without error, and shows the
		// image only if it was completely recorded.
		out := e.Must("images", "--format", "{{.Repository}}:{{.Tag}}")
		if strings.Contains(out, name+"\n") {
			e.Must("image", "inspect", name)
		}
	}
	e.Must("images")
	e.Must("import", big, "big:again")
	if got := strings.TrimSpace(e.Must("image", "inspect", "--format", "{{len .RootFS.Layers}}", "big:again")); got != "1" {
		t.Errorf("re-imported image has %s layers", got)
	}
	out := e.Must("image", "prune", "-f")
	t.Logf("prune: %s", out)
	e.assertConsistent()
	e.assertNoLeftovers()
}

// assertNoLeftovers checks that the overlay driver holds no layer
// directory without a record and no staging or temporary directory.
func (e *Env) assertNoLeftovers() {
	e.t.Helper()
	known := map[string]bool{}
	for _, l := range e.layers() {
		known[l.ID] = true
	}
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	ents, _ := os.ReadDir(filepath.Join(e.Root, "overlay"))
	for _, d := range ents {
		if hex64.MatchString(d.Name()) && !known[d.Name()] {
			e.t.Errorf("layer directory overlay/%s has no layer record", d.Name())
		}
	}
	for _, dir := range []string{"overlay/tempdirs", "overlay/staging", "overlay-layers/tmp"} {
		ents, _ := os.ReadDir(filepath.Join(e.Root, dir))
		for _, d := range ents {
			e.t.Errorf("left in %s: %s", dir, d.Name())
		}
	}
}
