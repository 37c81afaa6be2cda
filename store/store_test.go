package store

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"go.podman.io/storage/pkg/reexec"
	"go.podman.io/storage/pkg/unshare"
)

// TestMain serves storage's re-exec helpers (tar extraction runs in a
// re-executed copy of the test binary) and, for an unprivileged user,
// re-runs the tests inside a fresh user namespace with the user's
// subordinate ids, as nook itself runs inside its holder.
func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	if os.Geteuid() != 0 {
		unshare.MaybeReexecUsingUserNamespace(false)
	}
	os.Exit(m.Run())
}

func newStore(t testing.TB, driver string) *Store {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: driver})
	if err != nil {
		t.Fatalf("opening a store: %v", err)
	}
	t.Cleanup(func() {
		_, _ = s.Storage().Shutdown(true)
	})
	return s
}

type entry struct {
	name, body, link string
	typ              byte
	uid              int
}

func tarball(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Uid: e.uid, Gid: e.uid, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func smallRootfs(t testing.TB, content string) []byte {
	return tarball(t, entry{name: "etc/", typ: tar.TypeDir}, entry{name: "etc/hello", body: content})
}

func importImage(t testing.TB, s *Store, content string, names ...string) *Image {
	t.Helper()
	var normalized []string
	for _, n := range names {
		r, err := NormalizeName(n)
		if err != nil {
			t.Fatal(err)
		}
		normalized = append(normalized, r.String())
	}
	img, err := s.Import(bytes.NewReader(smallRootfs(t, content)), ImportOptions{
		Names:  normalized,
		Config: func(c *v1.Config) error { c.Env = append(c.Env, "CONTENT="+content); return nil },
	})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return img
}

func TestImportKeepsManifestAndConfig(t *testing.T) {
	s := newStore(t, "")
	img := importImage(t, s, "hello\n", "busybox")
	if want := digest.FromBytes(img.Config).Encoded(); img.ID != want {
		t.Errorf("image ID %s, want the config digest %s", img.ID, want)
	}
	if img.Digest != digest.FromBytes(img.Manifest) {
		t.Errorf("image digest %s is not the manifest's digest", img.Digest)
	}
	m, err := img.OCIManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest.Encoded() != img.ID || len(m.Layers) != 1 || m.SchemaVersion != 2 {
		t.Errorf("manifest %+v", m)
	}
	cfg, err := img.OCIConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0].String() != m.Layers[0].Digest.String() {
		t.Errorf("diff IDs %v, manifest layers %v", cfg.RootFS.DiffIDs, m.Layers)
	}
	if cfg.OS != "linux" || cfg.Config.Env[0] != "CONTENT=hello\n" {
		t.Errorf("config %+v", cfg)
	}
	// Read back byte for byte.
	again, err := s.Lookup("busybox")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Manifest, img.Manifest) || !bytes.Equal(again.Config, img.Config) {
		t.Error("manifest or config bytes changed on the way through the store")
	}
	// The layer's diff is the tar we gave, and its digest the diff ID.
	rc, err := s.LayerDiff(img.TopLayer)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name == "etc/hello" {
			found = true
		}
	}
	// Read to the end before closing: storage's Diff reads the layer's
	// tar-split in a goroutine that an early Close races with (a data race
	// inside go.podman.io/storage v1.65.1, seen with -race).
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Error("etc/hello is not in the layer diff")
	}
}

func TestLookupRules(t *testing.T) {
	s := newStore(t, "")
	img := importImage(t, s, "a", "busybox", "localhost/mine:1")
	for _, ref := range []string{"busybox", "busybox:latest", "docker.io/library/busybox", "docker.io/library/busybox:latest",
		"localhost/mine:1", img.ID, "sha256:" + img.ID, img.ID[:12], img.ID[:3],
		"busybox@" + img.Digest.String()} {
		got, err := s.Lookup(ref)
		if err != nil {
			t.Errorf("Lookup(%q): %v", ref, err)
			continue
		}
		if got.ID != img.ID {
			t.Errorf("Lookup(%q) = %s", ref, got.ID)
		}
	}
	for _, ref := range []string{"nope", "busybox:2", "localhost/mine:2", "sha256:" + strings.Repeat("0", 64)} {
		_, err := s.Lookup(ref)
		var nf *ImageNotFoundError
		if !errors.As(err, &nf) || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), ref) {
			t.Errorf("Lookup(%q) = %v, want a not-found error naming it", ref, err)
		}
	}
	for _, ref := range []string{"UPPER", "a:b:c", "x@sha256:zz", ""} {
		if _, err := s.Lookup(ref); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) = %v, want an invalid-reference error", ref, err)
		}
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	s := newStore(t, "")
	seen := map[byte]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		if i > 17 {
			t.Fatal("no shared first character after 17 images")
		}
		id := importImage(t, s, fmt.Sprint(i)).ID
		if prev, ok := seen[id[0]]; ok {
			a, b = prev, id
		}
		seen[id[0]] = id
	}
	_, err := s.Lookup(a[:1])
	var amb *AmbiguousIDError
	if !errors.As(err, &amb) || len(amb.Matches) < 2 {
		t.Fatalf("Lookup(%q) = %v, want ambiguous", a[:1], err)
	}
	if !strings.Contains(err.Error(), ShortID(a)) || !strings.Contains(err.Error(), ShortID(b)) {
		t.Errorf("the error does not name both images: %v", err)
	}
}

func TestTagAndRemoveRules(t *testing.T) {
	s := newStore(t, "")
	a := importImage(t, s, "a", "app:1")
	b := importImage(t, s, "b", "app:2")
	// A name held by another image moves, as in docker.
	if err := s.Tag("app:1", "app:2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Lookup("app:2"); got.ID != a.ID {
		t.Errorf("app:2 is %s, want it moved to %s", got.ID, a.ID)
	}
	if got, _ := s.Lookup(b.ID); len(got.Names) != 0 {
		t.Errorf("the image that lost its name still has %v", got.Names)
	}
	if err := s.Tag("app:1", "x@sha256:"+strings.Repeat("a", 64)); err == nil {
		t.Error("tagging with a digest succeeded")
	}
	// Removing one of two names untags.
	reps, err := s.RemoveImage("app:2", false)
	if err != nil || len(reps) != 1 || reps[0].Untagged != "app:2" {
		t.Fatalf("rmi app:2 = %v, %v", reps, err)
	}
	// By ID with several names: refused unless forced.
	if err := s.Tag("app:1", "other:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveImage(a.ID[:12], false); err == nil || !strings.Contains(err.Error(), "must be forced") {
		t.Errorf("rmi by ID of a twice-named image = %v", err)
	}
	reps, err = s.RemoveImage(a.ID[:12], true)
	if err != nil || len(reps) != 3 || reps[2].Deleted != a.ID {
		t.Errorf("rmi -f = %v, %v", reps, err)
	}
	if _, err := s.RemoveImage("app:1", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("rmi of a removed image = %v", err)
	}
	// The dangling one, by ID.
	if reps, err := s.RemoveImage(b.ID, false); err != nil || reps[len(reps)-1].Deleted != b.ID {
		t.Errorf("rmi of a dangling image = %v, %v", reps, err)
	}
	assertNoLayers(t, s)
}

func assertNoLayers(t *testing.T, s *Store) {
	t.Helper()
	ls, err := s.Storage().Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 0 {
		t.Errorf("%d layers left: %+v", len(ls), ls)
	}
}

func TestImportFailureLeavesNothing(t *testing.T) {
	s := newStore(t, "")
	good := smallRootfs(t, "x")
	big := tarball(t, entry{name: "big", body: strings.Repeat("0123456789", 1000)})
	for name, data := range map[string][]byte{
		"garbage":   bytes.Repeat([]byte("not a tar "), 1000),
		"truncated": big[:512+5000], // inside the file's data
		"hardlink":  tarball(t, entry{name: "passwd", typ: tar.TypeLink, link: "/etc/passwd"}),
	} {
		_, err := s.Import(bytes.NewReader(data), ImportOptions{Names: []string{"docker.io/library/bad:latest"}})
		if err == nil {
			t.Errorf("%s: import succeeded", name)
		}
		imgs, _ := s.Images()
		if len(imgs) != 0 {
			t.Errorf("%s: images left: %d", name, len(imgs))
		}
		assertNoLayers(t, s)
	}
	// A config change that fails removes the layer too.
	_, err := s.Import(bytes.NewReader(good), ImportOptions{Config: func(*v1.Config) error { return errors.New("bad change") }})
	if err == nil || !strings.Contains(err.Error(), "bad change") {
		t.Errorf("import with a failing change = %v", err)
	}
	assertNoLayers(t, s)
}

func TestPruneOrphanLayers(t *testing.T) {
	s := newStore(t, "")
	keep := importImage(t, s, "kept", "kept")
	// Recording an image clears the layer's pending name.
	if l, err := s.Storage().Layer(keep.TopLayer); err != nil || len(l.Names) != 0 {
		t.Errorf("the image's layer keeps names %v (%v)", l.Names, err)
	}
	// A layer being stored by a live invocation (this one) is kept.
	live, err := s.PutLayer("", bytes.NewReader(smallRootfs(t, "live")))
	if err != nil {
		t.Fatal(err)
	}
	// One left by a dead invocation goes at once.
	dead, _, err := s.Storage().PutLayer("", "", []string{pendingPrefix + "999999999-1-1"}, "", false, nil, bytes.NewReader(smallRootfs(t, "dead")))
	if err != nil {
		t.Fatal(err)
	}
	// One with no pending name is kept for the grace time.
	fresh, _, err := s.Storage().PutLayer("", "", nil, "", false, nil, bytes.NewReader(smallRootfs(t, "fresh")))
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.PruneImages(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Layers) != 1 || res.Layers[0] != dead.ID || len(res.Images) != 0 {
		t.Errorf("prune removed layers %v images %v, want only %s", res.Layers, res.Images, dead.ID)
	}
	for _, id := range []string{keep.TopLayer, live.ID, fresh.ID} {
		if _, err := s.Storage().Layer(id); err != nil {
			t.Errorf("layer %s was removed: %v", id, err)
		}
	}
	// prune -a removes the unused image and its layer.
	res, err = s.PruneImages(true)
	if err != nil || len(res.Images) != 1 || res.Images[0] != keep.ID {
		t.Errorf("prune -a = %+v, %v", res, err)
	}
}

func TestPendingNames(t *testing.T) {
	n := pendingName()
	if pending, alive := pendingState([]string{"other", n}); !pending || !alive {
		t.Errorf("pendingState(%q) = %v %v, want pending and alive", n, pending, alive)
	}
	if pending, alive := pendingState([]string{pendingPrefix + "1-0-1"}); !pending || alive {
		t.Errorf("a pending name with the wrong start time counts as alive")
	}
	if pending, _ := pendingState([]string{"busybox", pendingPrefix + "junk"}); pending {
		t.Error("a malformed pending name counts")
	}
	if pendingName() == n {
		t.Error("pending names repeat")
	}
}

func TestDriverSticksToRoot(t *testing.T) {
	dir := t.TempDir()
	o := Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Driver: "vfs"}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	importImage(t, s, "v", "v")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o.Driver = ""
	s, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Driver() != "vfs" {
		t.Errorf("reopened with driver %s", s.Driver())
	}
	s.Close()
	o.Driver = "overlay"
	if _, err := Open(o); err == nil || !strings.Contains(err.Error(), "vfs") || !strings.Contains(err.Error(), o.Root) {
		t.Errorf("opening a vfs root with overlay = %v", err)
	}
	defer func() {
		s, err := Open(Options{Root: o.Root, RunRoot: o.RunRoot})
		if err == nil {
			_, _ = s.Storage().Shutdown(true)
		}
	}()
}

func TestConcurrentUse(t *testing.T) {
	s := newStore(t, "")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("docker.io/library/w%d:%d", w, i)
				img, err := s.Import(bytes.NewReader(smallRootfs(t, name)), ImportOptions{Names: []string{name}})
				if err != nil {
					errs <- err
					return
				}
				if _, err := s.Images(); err != nil {
					errs <- err
				}
				if err := s.Tag(img.ID, name+"-t"); err != nil {
					errs <- err
				}
				if i < 2 {
					if _, err := s.RemoveImage(img.ID, true); err != nil {
						errs <- err
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	imgs, err := s.Images()
	if err != nil || len(imgs) != 8 {
		t.Fatalf("%d images (%v), want 8", len(imgs), err)
	}
	ls, _ := s.Storage().Layers()
	if len(ls) != 8 {
		t.Errorf("%d layers for 8 one-layer images", len(ls))
	}
}

func TestNormalizeAndFamiliar(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                "docker.io/library/busybox:latest",
		"busybox:1":              "docker.io/library/busybox:1",
		"me/app":                 "docker.io/me/app:latest",
		"localhost/x":            "localhost/x:latest",
		"localhost:5000/a/b:2":   "localhost:5000/a/b:2",
		"quay.io/org/img:v1.2.3": "quay.io/org/img:v1.2.3",
	} {
		got, err := NormalizeName(in)
		if err != nil || got.String() != want {
			t.Errorf("NormalizeName(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for stored, want := range map[string]string{
		"docker.io/library/busybox:latest": "busybox:latest",
		"docker.io/me/app:1":               "me/app:1",
		"localhost/x:latest":               "localhost/x:latest",
	} {
		if got := FamiliarName(stored); got != want {
			t.Errorf("FamiliarName(%q) = %q, want %q", stored, got, want)
		}
	}
	for _, bad := range []string{"UPPER", "a:b:c", "-x", "x/", ""} {
		if _, err := NormalizeName(bad); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("NormalizeName(%q) = %v, want an error naming it", bad, err)
		}
	}
	if ShortID("sha256:"+strings.Repeat("ab", 32)) != "abababababab" {
		t.Error("ShortID")
	}
}

// FuzzNormalizeName: any string either fails with an error naming it or
// normalizes to a name that is stable under the store's round trip.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"busybox", "localhost:5000/a/b:1", "a@sha256:" + strings.Repeat("0", 64), "UPPER", "x:", ":", "a/b/c/d:e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := NormalizeName(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("error %v does not name %q", err, s)
			}
			return
		}
		again, err := NormalizeName(FamiliarName(n.String()))
		if err != nil || again.String() != n.String() {
			t.Fatalf("%q -> %q -> familiar %q -> %v, %v", s, n, FamiliarName(n.String()), again, err)
		}
		b, _ := json.Marshal(n.String())
		if len(b) == 0 {
			t.Fatal("unencodable name")
		}
	})
}
