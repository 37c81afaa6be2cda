package pusher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
)

// Compression formats for push.
const (
	Gzip = "gzip"
	Zstd = "zstd"
)

// checkCompression validates a --compression-format and its level.
func checkCompression(format string, level int) error {
	switch format {
	case "", Gzip:
		if level < 0 || level > 9 {
			return fmt.Errorf("invalid gzip compression level %d: use 1 (fastest) to 9 (smallest)", level)
		}
	case Zstd:
		if level < 0 || level > 4 {
			return fmt.Errorf("invalid zstd compression level %d: use 1 (fastest) to 4 (smallest)", level)
		}
	default:
		return fmt.Errorf("invalid compression format %q: use gzip or zstd", format)
	}
	return nil
}

// uncompressedDiff streams a stored layer as an uncompressed tar, whatever
// the compression it was stored from.
func uncompressedDiff(st storage.Store, id string) (io.ReadCloser, error) {
	unc := archive.Uncompressed
	rc, err := st.Diff("", id, &storage.DiffOptions{Compression: &unc})
	if err != nil {
		return nil, fmt.Errorf("reading layer %s: %w", shortDigest(id), err)
	}
	// The store holds its layer lock until Close, and releasing it twice
	// is fatal: archive writers may close twice.
	return &closeOnce{ReadCloser: rc}, nil
}

type closeOnce struct {
	io.ReadCloser
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.ReadCloser.Close() })
	return c.err
}

// compressor turns a tar stream into a compressed one in a goroutine.
// Given the same input, format and level, the output is the same bytes
// (pgzip cuts fixed-size blocks), so a cached digest stays valid.
func compressor(src io.ReadCloser, format string, level int) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		defer src.Close()
		var (
			zw  io.WriteCloser
			err error
		)
		switch format {
		case Zstd:
			lvl := zstd.SpeedFastest
			if level > 0 {
				lvl = zstd.EncoderLevel(level)
			}
			zw, err = zstd.NewWriter(pw, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		default:
			lvl := pgzip.BestSpeed
			if level > 0 {
				lvl = level
			}
			var gw *pgzip.Writer
			gw, err = pgzip.NewWriterLevel(pw, lvl)
			if err == nil {
				err = gw.SetConcurrency(1<<20, 2*runtime.GOMAXPROCS(0))
			}
			zw = gw
		}
		if err == nil {
			_, err = io.Copy(zw, src)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// layerMediaType is the media type of a compressed layer in a manifest of
// the given kind.
func layerMediaType(manifest types.MediaType, format string) types.MediaType {
	if format == Zstd {
		return types.OCILayerZStd
	}
	if manifest == types.DockerManifestSchema2 {
		return types.DockerLayer
	}
	return types.OCILayer
}

// compressionOf says how a layer media type is compressed ("" for none or
// unknown).
func compressionOf(mt types.MediaType) string {
	switch mt {
	case types.DockerLayer, types.OCILayer, types.OCIRestrictedLayer, types.DockerForeignLayer:
		return Gzip
	case types.OCILayerZStd:
		return Zstd
	}
	return ""
}

// blobCache is what a layer remembers of its compressed form: the digest
// and size of its compression with one format and level, and the
// repositories it was pushed to (for cross-repository mounts). It lives
// with the layer in the store (layer big data) and goes away with it.
type blobCache struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
	Repos  []string      `json:"repos,omitempty"`
}

func cacheKey(format string, level int) string {
	if format == "" {
		format = Gzip
	}
	return fmt.Sprintf("nook-blob-%s-%d", format, level)
}

func readCache(st storage.Store, layer, key string) *blobCache {
	rc, err := st.LayerBigData(layer, key)
	if err != nil {
		return nil
	}
	defer rc.Close()
	var c blobCache
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&c); err != nil || c.Digest.Validate() != nil {
		return nil
	}
	return &c
}

func writeCache(st storage.Store, layer, key string, c *blobCache) error {
	if len(c.Repos) > 20 {
		c.Repos = c.Repos[len(c.Repos)-20:]
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return st.SetLayerBigData(layer, key, bytes.NewReader(b))
}

// addRepo records a repository a cached blob is in; it reports whether
// that changed anything.
func (c *blobCache) addRepo(repo string) bool {
	if slices.Contains(c.Repos, repo) {
		return false
	}
	c.Repos = append(c.Repos, repo)
	return true
}
