package pusher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"
	"golang.org/x/sync/errgroup"

	"github.com/nook-containers/nook/store"
)

// PushResult is what a push did.
type PushResult struct {
	Reference string        // where it went, fully qualified
	Digest    digest.Digest // the manifest's digest in the registry
	Size      int           // the manifest's size
}

// Push uploads the image src (a name or ID in the store) to dest (src's
// name when empty). Layers go up concurrently, compressed once; blobs the
// registry has are skipped, blobs in another repository of the registry
// are mounted, and a layer's compressed digest is remembered so that a
// later push of it compresses nothing.
func Push(ctx context.Context, s *store.Store, src, dest string, o Options) (*PushResult, error) {
	if err := checkCompression(o.Compression, o.CompressionLevel); err != nil {
		return nil, err
	}
	img, err := s.Lookup(src)
	if err != nil {
		return nil, err
	}
	if dest == "" {
		dest = src
		if !looksLikeName(src, img) {
			return nil, fmt.Errorf("%s is an image ID: name a destination (nook push %s REGISTRY/REPOSITORY:TAG)", src, src)
		}
	}
	named, err := reference.ParseNormalizedNamed(dest)
	if err != nil {
		return nil, fmt.Errorf("invalid destination %q: %w", dest, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, fmt.Errorf("cannot push to a digest reference %q: give a tag", dest)
	}
	named = reference.TagNameOnly(named)
	cfg, err := o.registries()
	if err != nil {
		return nil, err
	}
	eps, err := cfg.endpoints(named, o.Insecure, false)
	if err != nil {
		return nil, err
	}
	ep := eps[len(eps)-1]
	c := newClient(&o)
	prog := newProgress(o.Progress, o.Terminal, o.Quiet)
	defer prog.done()
	p := &pushJob{c: c, s: s, st: s.Storage(), img: img, ep: ep, prog: prog}
	return p.run(ctx)
}

// looksLikeName tells a name from an ID prefix the user typed.
func looksLikeName(src string, img *store.Image) bool {
	id := strings.TrimPrefix(src, "sha256:")
	return !strings.HasPrefix(img.ID, id)
}

type pushJob struct {
	c    *client
	s    *store.Store
	st   storage.Store
	img  *store.Image
	ep   endpoint
	prog *progress
	rc   *repoClient
	from []name.Repository // same-registry repositories the image came from
}

func (p *pushJob) run(ctx context.Context) (*PushResult, error) {
	dest := p.ep.ref
	p.prog.printf("The push refers to repository [%s]", dest.Context())
	for _, n := range p.img.Names {
		ref, err := name.ParseReference(n)
		if err != nil || ref.Context().RegistryStr() != dest.Context().RegistryStr() || ref.Context().String() == dest.Context().String() {
			continue
		}
		if len(p.from) < 3 {
			p.from = append(p.from, ref.Context())
		}
	}
	var err error
	if p.rc, err = p.c.repo(ctx, dest.Context(), p.ep.insecure, true, p.from); err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(p.img.Manifest))
	if err != nil {
		return nil, fmt.Errorf("decoding the stored manifest of %s: %w", store.ShortID(p.img.ID), err)
	}
	if got := digest.FromBytes(p.img.Config); got.String() != m.Config.Digest.String() {
		return nil, fmt.Errorf("image %s is inconsistent: its manifest names configuration %s, the stored one is %s", store.ShortID(p.img.ID), m.Config.Digest, got)
	}
	chain, err := p.s.LayerChain(p.img.TopLayer)
	if err != nil {
		return nil, err
	}
	if len(chain) != len(m.Layers) {
		return nil, fmt.Errorf("image %s is inconsistent: %d layers stored, %d in its manifest", store.ShortID(p.img.ID), len(chain), len(m.Layers))
	}
	mt := m.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	if p.c.o.Compression == Zstd && mt == types.DockerManifestSchema2 {
		// Docker's format has no zstd layers.
		mt = types.OCIManifestSchema1
	}
	descs := make([]v1.Descriptor, len(chain))
	bars := make([]*bar, len(chain))
	for i := range chain {
		bars[i] = p.prog.bar(chain[i].UncompressedDigest.String(), -1)
		bars[i].set("Preparing")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.c.o.jobs())
	for i := range chain {
		g.Go(func() error {
			d, err := p.layer(gctx, chain[i], m.Layers[i], mt, bars[i])
			if err != nil {
				bars[i].set("Failed")
				return fmt.Errorf("pushing layer %s: %w", shortDigest(chain[i].UncompressedDigest.String()), err)
			}
			descs[i] = d
			return nil
		})
	}
	g.Go(func() error {
		return p.config(gctx, m.Config)
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	raw := p.img.Manifest
	if changed(m, descs) || mt != m.MediaType && m.MediaType != "" {
		nm := *m
		nm.MediaType = mt
		nm.Layers = descs
		nm.Config.MediaType = configMediaType(mt, m.Config.MediaType)
		if raw, err = json.Marshal(&nm); err != nil {
			return nil, fmt.Errorf("encoding the manifest: %w", err)
		}
	}
	if err := p.rc.putManifest(ctx, dest, raw, mt); err != nil {
		return nil, err
	}
	d := digest.FromBytes(raw)
	tag := "latest"
	if t, ok := dest.(name.Tag); ok {
		tag = t.TagStr()
	}
	p.prog.done()
	p.prog.printf("%s: digest: %s size: %d", tag, d, len(raw))
	// Remembered so that 'pull NAME@DIGEST' and 'images --digests' know it.
	if err := p.st.SetImageBigData(p.img.ID, "manifest-"+d.String(), raw, manifestDigester); err != nil {
		return nil, fmt.Errorf("recording the pushed manifest: %w", err)
	}
	return &PushResult{Reference: dest.String(), Digest: d, Size: len(raw)}, nil
}

func changed(m *v1.Manifest, descs []v1.Descriptor) bool {
	for i, d := range descs {
		o := m.Layers[i]
		if o.Digest != d.Digest || o.Size != d.Size || o.MediaType != d.MediaType {
			return true
		}
	}
	return false
}

// configMediaType keeps the config media type in step with the manifest's.
func configMediaType(manifest, current types.MediaType) types.MediaType {
	if manifest == types.OCIManifestSchema1 && current == types.DockerConfigJSON {
		return types.OCIConfigJSON
	}
	if current == "" {
		if manifest == types.DockerManifestSchema2 {
			return types.DockerConfigJSON
		}
		return types.OCIConfigJSON
	}
	return current
}

// config uploads the configuration blob unless the registry has it.
func (p *pushJob) config(ctx context.Context, desc v1.Descriptor) error {
	d, _ := digest.Parse(desc.Digest.String())
	ok, err := p.rc.blobExists(ctx, d)
	if err != nil || ok {
		return err
	}
	_, _, err = p.rc.upload(ctx, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(p.img.Config)), nil
	}, d, int64(len(p.img.Config)), nil)
	return err
}

// layer makes one layer's blob present in the destination and returns
// its descriptor.
func (p *pushJob) layer(ctx context.Context, l *storage.Layer, orig v1.Descriptor, mt types.MediaType, b *bar) (v1.Descriptor, error) {
	o := p.c.o
	format := o.Compression
	destRepo := p.ep.ref.Context().String()

	// 1. The blob the layer was pulled as, if the registry has it or
	// can mount it: the manifest then stays byte for byte the same.
	if oc := compressionOf(orig.MediaType); oc != "" && (format == "" || format == oc) && l.CompressedDigest.String() == orig.Digest.String() && (oc != Zstd || mt != types.DockerManifestSchema2) {
		ok, how, err := p.present(ctx, l.CompressedDigest, nil)
		if err != nil {
			return v1.Descriptor{}, err
		}
		if ok {
			b.set(how)
			return orig, nil
		}
	}
	if format == "" {
		format = Gzip
	}
	// 2. The blob an earlier push compressed it to.
	key := cacheKey(format, o.CompressionLevel)
	lmt := layerMediaType(mt, format)
	cached := readCache(p.st, l.ID, key)
	if cached == nil && l.UncompressedDigest != "" {
		// The same content stored as another layer (imported or built
		// twice) was maybe compressed and pushed already.
		if others, err := p.st.LayersByUncompressedDigest(l.UncompressedDigest); err == nil {
			for _, o := range others {
				if o.ID != l.ID {
					if cached = readCache(p.st, o.ID, key); cached != nil {
						break
					}
				}
			}
		}
	}
	if cached != nil {
		ok, how, err := p.present(ctx, cached.Digest, cached.Repos)
		if err != nil {
			return v1.Descriptor{}, err
		}
		if ok {
			if cached.addRepo(destRepo) {
				_ = writeCache(p.st, l.ID, key, cached)
			}
			b.set(how)
			h, _ := v1.NewHash(cached.Digest.String())
			return v1.Descriptor{MediaType: lmt, Digest: h, Size: cached.Size}, nil
		}
	}
	// 3. Compress and upload, once.
	b.set("Pushing")
	d, size, err := p.rc.upload(ctx, func() (io.ReadCloser, error) {
		diff, err := uncompressedDiff(p.st, l.ID)
		if err != nil {
			return nil, err
		}
		return compressor(diff, format, o.CompressionLevel), nil
	}, "", -1, b)
	if err != nil {
		return v1.Descriptor{}, err
	}
	c := &blobCache{Digest: d, Size: size}
	if old := readCache(p.st, l.ID, key); old != nil && old.Digest == d {
		c = old
	}
	c.addRepo(destRepo)
	if err := writeCache(p.st, l.ID, key, c); err != nil {
		return v1.Descriptor{}, fmt.Errorf("caching the compressed digest: %w", err)
	}
	b.set("Pushed")
	h, _ := v1.NewHash(d.String())
	return v1.Descriptor{MediaType: lmt, Digest: h, Size: size}, nil
}

// present reports whether the destination has blob d, mounting it from
// another repository of the registry if one has it.
func (p *pushJob) present(ctx context.Context, d digest.Digest, repos []string) (bool, string, error) {
	ok, err := p.rc.blobExists(ctx, d)
	if err != nil || ok {
		return ok, "Layer already exists", err
	}
	reg := p.ep.ref.Context().RegistryStr()
	seen := map[string]bool{p.ep.ref.Context().String(): true}
	from := append([]name.Repository(nil), p.from...)
	for _, r := range repos {
		rr, err := name.NewRepository(r)
		if err == nil && rr.RegistryStr() == reg {
			from = append(from, rr)
		}
	}
	for _, f := range from {
		if seen[f.String()] {
			continue
		}
		seen[f.String()] = true
		if p.rc.mount(ctx, d, f) {
			return true, "Mounted from " + f.RepositoryStr(), nil
		}
	}
	return false, "", nil
}

// blobExists asks (HEAD) whether the repository has a blob.
func (rc *repoClient) blobExists(ctx context.Context, d digest.Digest) (bool, error) {
	var ok bool
	err := retry(ctx, rc.retries, rc.delay, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, rc.url("blobs", d.String()), nil)
		if err != nil {
			return err
		}
		resp, err := rc.http.Do(req)
		if err != nil {
			return err
		}
		err = rc.check(resp, "checking blob "+d.String(), http.StatusOK, http.StatusNotFound)
		resp.Body.Close()
		if err != nil {
			return err
		}
		ok = resp.StatusCode == http.StatusOK
		return nil
	})
	return ok, err
}

// mount asks the registry to link blob d from another repository; a
// refusal is no error (the blob is then uploaded).
func (rc *repoClient) mount(ctx context.Context, d digest.Digest, from name.Repository) bool {
	u := rc.url("blobs", "uploads/") + "?" + url.Values{"mount": {d.String()}, "from": {from.RepositoryStr()}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return false
	}
	resp, err := rc.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		// An upload session was opened instead: close it.
		if loc, err := nextLocation(resp); err == nil {
			if dreq, err := http.NewRequestWithContext(ctx, http.MethodDelete, loc, nil); err == nil {
				if dresp, err := rc.http.Do(dreq); err == nil {
					dresp.Body.Close()
				}
			}
		}
	}
	return resp.StatusCode == http.StatusCreated
}

// nextLocation resolves an upload's Location header.
func nextLocation(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", errors.New("the registry sent no Location for the upload")
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("bad upload Location %q: %w", loc, err)
	}
	r := resp.Request.URL.ResolveReference(u)
	if r.Host != resp.Request.URL.Host {
		if err := checkRedirect(&http.Request{URL: r}, []*http.Request{resp.Request}); err != nil {
			return "", err
		}
	}
	return r.String(), nil
}

// upload sends a blob: POST for a session, PATCH with the stream, PUT with
// its digest (computed on the way when want is empty). A transient failure
// starts over with a fresh stream.
func (rc *repoClient) upload(ctx context.Context, open func() (io.ReadCloser, error), want digest.Digest, size int64, b *bar) (digest.Digest, int64, error) {
	var (
		got digest.Digest
		n   int64
	)
	err := retry(ctx, rc.retries, rc.delay, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, rc.url("blobs", "uploads/"), nil)
		if err != nil {
			return err
		}
		resp, err := rc.http.Do(req)
		if err != nil {
			return err
		}
		err = rc.check(resp, "starting an upload", http.StatusAccepted)
		resp.Body.Close()
		if err != nil {
			return err
		}
		loc, err := nextLocation(resp)
		if err != nil {
			return permanent(err)
		}
		body, err := open()
		if err != nil {
			return permanent(err)
		}
		defer body.Close()
		h := &hashCounter{r: body, h: sha256.New()}
		var r io.Reader = h
		if b != nil {
			b.reset()
			r = b.reader(h)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPatch, loc, r)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		if size >= 0 {
			req.ContentLength = size
		}
		resp, err = rc.http.Do(req)
		if err != nil {
			return err
		}
		err = rc.check(resp, "uploading", http.StatusAccepted, http.StatusNoContent, http.StatusCreated)
		resp.Body.Close()
		if err != nil {
			return err
		}
		got, n = digest.NewDigest(digest.SHA256, h.h), h.n
		if want != "" && got != want {
			return permanent(&DigestMismatchError{What: "uploaded blob", Want: want.String(), Got: got.String()})
		}
		if loc, err = nextLocation(resp); err != nil {
			return permanent(err)
		}
		pu, err := url.Parse(loc)
		if err != nil {
			return permanent(err)
		}
		q := pu.Query()
		q.Set("digest", got.String())
		pu.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, pu.String(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err = rc.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return rc.check(resp, "committing blob "+got.String(), http.StatusCreated)
	})
	if err != nil {
		return "", 0, unwrapPermanent(err)
	}
	return got, n, nil
}

// putManifest uploads a manifest under ref's tag.
func (rc *repoClient) putManifest(ctx context.Context, ref name.Reference, raw []byte, mt types.MediaType) error {
	return unwrapPermanent(retry(ctx, rc.retries, rc.delay, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, rc.url("manifests", ref.Identifier()), bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", string(mt))
		resp, err := rc.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return rc.check(resp, "uploading the manifest of "+ref.String(), http.StatusCreated, http.StatusOK, http.StatusAccepted)
	}))
}

// headManifest asks for the digest a reference points at.
func (rc *repoClient) headManifest(ctx context.Context, ref name.Reference) (digest.Digest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, rc.url("manifests", ref.Identifier()), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := rc.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := rc.check(resp, "checking "+ref.String(), http.StatusOK); err != nil {
		return "", err
	}
	return digest.Parse(resp.Header.Get("Docker-Content-Digest"))
}
