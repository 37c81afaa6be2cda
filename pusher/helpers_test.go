package pusher

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.podman.io/storage/pkg/reexec"

	"github.com/nook-containers/nook/store"
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	if os.Geteuid() != 0 {
		// The store writes files owned by other ids: outside nook's user
		// namespace only root can. The e2e suite covers rootless use.
		fmt.Fprintln(os.Stderr, "pusher tests need root (the store chowns layer files): run them as root, e.g. 'sudo make test-unit'; the rootless paths are covered by the e2e suite")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// newStore opens a private store that the test closes.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(store.Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Storage().Shutdown(true)
	})
	return s
}

// regServer is an in-memory registry with a hook to misbehave and a
// request log.
type regServer struct {
	*httptest.Server
	host  string
	reg   http.Handler
	hook  atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	blobs atomic.Int64 // blob GETs
	puts  atomic.Int64 // PATCH uploads
	reqs  atomic.Int64
}

func newRegistry(t testing.TB) *regServer {
	t.Helper()
	rs := &regServer{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	rs.reg = reg
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.reqs.Add(1)
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			rs.blobs.Add(1)
		}
		if r.Method == http.MethodPatch {
			rs.puts.Add(1)
		}
		if h := rs.hook.Load(); h != nil && (*h)(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(rs.Close)
	rs.host = strings.TrimPrefix(rs.URL, "http://")
	return rs
}

func (rs *regServer) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	if h == nil {
		rs.hook.Store(nil)
		return
	}
	rs.hook.Store(&h)
}

// ref is a reference to repo on this registry.
func (rs *regServer) ref(repo string) string { return rs.host + "/" + repo }

// pushRandom puts a random image with n layers (gzip) under ref.
func pushRandom(t testing.TB, ref string, size int64, n int) v1.Image {
	t.Helper()
	img, err := random.Image(size, int64(n))
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return img
}

// fastOptions retry quickly and print nothing.
func fastOptions() Options {
	return Options{Registries: &RegistriesConfig{}, RetryDelay: 10 * time.Millisecond, Keychain: authn.NewMultiKeychain()}
}

// tarOf builds an uncompressed tar of files (name -> content; a name
// ending in / is a directory).
func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, c := range files {
		hdr := &tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if strings.HasSuffix(n, "/") {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// localImage imports a two-file image named n into s.
func localImage(t testing.TB, s *store.Store, n string, content string) *store.Image {
	t.Helper()
	named, err := store.NormalizeName(n)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Import(bytes.NewReader(tarOf(t, map[string]string{"etc/": "", "etc/hello": content, "bin/x": strings.Repeat(content, 1000)})), store.ImportOptions{Names: []string{named.String()}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var (
	_ = mutate.Append
	_ = types.OCILayer
)

// mutateConfig returns img with another config file.
func mutateConfig(img v1.Image, cf *v1.ConfigFile) (v1.Image, error) {
	return mutate.ConfigFile(img, cf)
}

func newGzipWriter(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) }
