package pusher

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nook-containers/nook/store"
)

// assertEmpty fails unless the store has no image and no layer.
func assertEmpty(t *testing.T, s *store.Store) {
	t.Helper()
	imgs, _ := s.Images()
	layers, _ := s.Storage().Layers()
	if len(imgs) != 0 || len(layers) != 0 {
		t.Fatalf("store not empty after a failed pull: %d images, %d layers", len(imgs), len(layers))
	}
}

// fetchRaw gets a path from the registry without hooks.
func isBlobGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
}

func layerDigests(t *testing.T, ref string) []string {
	t.Helper()
	m, _ := remoteManifest(t, ref)
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

func TestPullBlobDigestMismatch(t *testing.T) {
	rs := newRegistry(t)
	ref := rs.ref("a/b:1")
	pushRandom(t, ref, 50000, 2)
	bad := layerDigests(t, ref)[1]
	// Serve the second layer's blob with a byte changed.
	rs.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !isBlobGet(r) || !strings.HasSuffix(r.URL.Path, bad) {
			return false
		}
		rec := httptest.NewRecorder()
		r.Header.Del("Range")
		rs.reg.ServeHTTP(rec, r)
		b := rec.Body.Bytes()
		b[len(b)/2] ^= 0xff
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b)
		return true
	})
	s := newStore(t)
	_, err := Pull(ctxT(t), s, ref, fastOptions())
	if err == nil {
		t.Fatal("pull of a corrupted blob succeeded")
	}
	imgs, _ := s.Images()
	if len(imgs) != 0 {
		t.Fatalf("an image was recorded: %v", imgs[0].Names)
	}
	layers, _ := s.Storage().Layers()
	if len(layers) > 1 {
		t.Fatalf("%d layers stored; the corrupted one must not be", len(layers))
	}
	t.Logf("error: %v", err)
}

func TestPullDiffIDMismatch(t *testing.T) {
	rs := newRegistry(t)
	ref := rs.ref("a/b:1")
	img := pushRandom(t, ref, 5000, 1)
	// A manifest whose config claims another diff ID: push a config with
	// a changed diff ID under a new manifest.
	cf, _ := img.ConfigFile()
	cf.RootFS.DiffIDs[0].Hex = strings.Repeat("1", 64)
	bad, err := mutateConfig(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(rs.ref("a/b:bad"))
	if err := remote.Write(r, bad); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	_, err = Pull(ctxT(t), s, rs.ref("a/b:bad"), fastOptions())
	var dm *DigestMismatchError
	if !errors.As(err, &dm) {
		t.Fatalf("err = %v, want a digest mismatch", err)
	}
	assertEmpty(t, s)
}

func TestPullManifestFaults(t *testing.T) {
	rs := newRegistry(t)
	ref := rs.ref("a/b:1")
	img := pushRandom(t, ref, 1000, 1)
	d, _ := img.Digest()
	cases := []struct {
		name string
		ref  string
		hook func(w http.ResponseWriter, r *http.Request) bool
		want string
	}{
		{"tag digest header mismatch", ref, func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/manifests/") {
				return false
			}
			rec := httptest.NewRecorder()
			rs.reg.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
			w.Write(rec.Body.Bytes())
			return true
		}, "does not match"},
		{"by digest with other bytes", rs.ref("a/b@" + d.String()), func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/manifests/") {
				return false
			}
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Write([]byte(`{"schemaVersion":2,"config":{"digest":"sha256:` + strings.Repeat("b", 64) + `","size":2},"layers":[]}`))
			return true
		}, "does not match"},
		{"manifest too large", ref, func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/manifests/") {
				return false
			}
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Write(bytes.Repeat([]byte(" "), 5<<20))
			return true
		}, "limit"},
		{"manifest too large and chunked", ref, func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/manifests/") {
				return false
			}
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			for i := 0; i < 6; i++ {
				w.Write(bytes.Repeat([]byte(" "), 1<<20))
				w.(http.Flusher).Flush()
			}
			return true
		}, "limit"},
		{"redirect loop", ref, func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobGet(r) {
				return false
			}
			http.Redirect(w, r, r.URL.String(), http.StatusFound)
			return true
		}, "redirect"},
		{"2 GiB content length", ref, func(w http.ResponseWriter, r *http.Request) bool {
			if !isBlobGet(r) {
				return false
			}
			hj, _ := w.(http.Hijacker)
			conn, buf, err := hj.Hijack()
			if err != nil {
				return true
			}
			defer conn.Close()
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\nxxxx", int64(2)<<30)
			buf.Flush()
			return true
		}, "2147483648"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs.setHook(c.hook)
			defer rs.setHook(nil)
			s := newStore(t)
			_, err := Pull(ctxT(t), s, c.ref, fastOptions())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, c.want)
			}
			assertEmpty(t, s)
		})
	}
}

// dropAfter serves a blob but cuts the connection after n bytes, for the
// first drops requests.
func dropAfter(rs *regServer, n int, drops int32) *atomic.Int32 {
	var count atomic.Int32
	rs.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !isBlobGet(r) || r.Header.Get("Range") != "" || count.Load() >= drops {
			return false
		}
		count.Add(1)
		rec := httptest.NewRecorder()
		rs.reg.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK || rec.Body.Len() <= n {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return true
		}
		hj := w.(http.Hijacker)
		conn, buf, err := hj.Hijack()
		if err != nil {
			return true
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", rec.Body.Len())
		buf.Write(rec.Body.Bytes()[:n])
		buf.Flush()
		return true
	})
	return &count
}

func TestPullResumesDroppedConnection(t *testing.T) {
	rs := newRegistry(t)
	ref := rs.ref("a/b:1")
	want := pushRandom(t, ref, 300000, 2)
	count := dropAfter(rs, 100000, 2)
	s := newStore(t)
	img, err := Pull(ctxT(t), s, ref, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	if count.Load() != 2 {
		t.Fatalf("%d connections dropped, want 2", count.Load())
	}
	cn, _ := want.ConfigName()
	if img.ID != cn.Hex {
		t.Fatalf("pulled %s", img.ID)
	}
	layers, _ := s.Storage().Layers()
	if len(layers) != 2 {
		t.Fatalf("%d layers", len(layers))
	}
}

func TestPullDroppedConnectionNoRetries(t *testing.T) {
	rs := newRegistry(t)
	ref := rs.ref("a/b:1")
	pushRandom(t, ref, 300000, 1)
	// Every attempt drops and ranges are refused: the pull fails cleanly.
	dropAfter(rs, 100000, 1000)
	prev := rs.hook.Load()
	rs.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if isBlobGet(r) && r.Header.Get("Range") != "" {
			r.Header.Del("Range")
		}
		return (*prev)(w, r)
	})
	s := newStore(t)
	o := fastOptions()
	o.Retries = 2
	_, err := Pull(ctxT(t), s, ref, o)
	if err == nil {
		t.Fatal("pull succeeded")
	}
	assertEmpty(t, s)
}

func basicAuth(rs *regServer, user, pass string) {
	rs.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		if ok && u == user && p == pass {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return true
	})
}

func TestPullAuth(t *testing.T) {
	rs := newRegistry(t)
	ref := rs.ref("a/b:1")
	pushRandom(t, ref, 1000, 1)
	basicAuth(rs, "me", "right-password")
	s := newStore(t)
	_, err := Pull(ctxT(t), s, ref, fastOptions())
	want := "authentication required for " + rs.host + ": run nook login " + rs.host
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	o := fastOptions()
	o.Keychain = CredentialsKeychain("me", "wrong-password")
	_, err = Pull(ctxT(t), s, ref, o)
	var afe *AuthFailedError
	if !errors.As(err, &afe) || strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("err = %v, want an authentication failure that does not show the password", err)
	}
	o.Keychain = CredentialsKeychain("me", "right-password")
	if _, err := Pull(ctxT(t), s, ref, o); err != nil {
		t.Fatal(err)
	}
	// Push without credentials.
	localImage(t, s, "localhost/x:1", "x")
	_, err = Push(ctxT(t), s, "localhost/x:1", rs.ref("a/x:1"), fastOptions())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("push err = %v, want %q", err, want)
	}
}

func TestPushRetriesTransientErrors(t *testing.T) {
	rs := newRegistry(t)
	s := newStore(t)
	localImage(t, s, "localhost/x:1", "retry")
	var fails atomic.Int32
	rs.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch && fails.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	if _, err := Push(ctxT(t), s, "localhost/x:1", rs.ref("a/x:1"), fastOptions()); err != nil {
		t.Fatal(err)
	}
	if fails.Load() < 3 {
		t.Fatalf("%d PATCH attempts", fails.Load())
	}
}

var (
	_ = bufio.NewReader
	_ = registry.New
)
