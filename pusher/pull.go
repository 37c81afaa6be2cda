package pusher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/nook-containers/nook/store"
)

// Pull fetches ref (a short name, a qualified name, name:tag or
// name@digest) into the store and returns the stored image. A short name
// is tried in each unqualified-search registry in turn; mirrors are tried
// before their registry. The image is recorded only after every layer is
// stored and verified.
func Pull(ctx context.Context, s *store.Store, ref string, o Options) (*store.Image, error) {
	res, err := PullImage(ctx, s, ref, o)
	if err != nil {
		return nil, err
	}
	return res.Image, nil
}

// PullResult is what PullImage stored.
type PullResult struct {
	Image  *store.Image
	Name   string        // the fully qualified name it was stored under
	Digest digest.Digest // the registry's digest (the index's, if any)
}

// PullImage is Pull, also saying which name the image was found under.
func PullImage(ctx context.Context, s *store.Store, ref string, o Options) (*PullResult, error) {
	cfg, err := o.registries()
	if err != nil {
		return nil, err
	}
	cands, err := cfg.candidates(ref, o.Insecure)
	if err != nil {
		return nil, err
	}
	c := newClient(&o)
	prog := newProgress(o.Progress, o.Terminal, o.Quiet)
	defer prog.done()
	var errs []string
	var last error
	for _, cand := range cands {
		for _, ep := range cand.endpoints {
			if len(cands) > 1 || len(cand.endpoints) > 1 {
				prog.printf("Trying to pull %s...", ep.ref)
			}
			res, err := c.pullFrom(ctx, s, cand.named, ep, prog)
			if err == nil {
				return res, nil
			}
			if ctx.Err() != nil {
				return nil, err
			}
			last = err
			errs = append(errs, fmt.Sprintf("%s: %v", ep.ref, err))
			if !fallThrough(err) {
				return nil, fmt.Errorf("pulling %s: %w", ep.ref, err)
			}
		}
	}
	if len(errs) == 1 {
		return nil, fmt.Errorf("pulling %s: %w", cands[0].endpoints[0].ref, last)
	}
	return nil, fmt.Errorf("pulling %s: no registry had it:\n  %s", ref, strings.Join(errs, "\n  "))
}

// fallThrough reports whether the next mirror or search registry should
// be tried after err: the image was not there, or the registry could not
// be reached or wanted credentials.
func fallThrough(err error) bool {
	var nf *NotFoundError
	var are *AuthRequiredError
	var afe *AuthFailedError
	var dm *DigestMismatchError
	if errors.As(err, &dm) {
		return false
	}
	return errors.As(err, &nf) || errors.As(err, &are) || errors.As(err, &afe) || isTransient(err)
}

// resolved is a manifest ready to pull.
type resolved struct {
	manifest       []byte
	manifestDigest digest.Digest
	index          []byte // the index it was picked from, if any
	indexDigest    digest.Digest
	parsed         *v1.Manifest
}

// resolve fetches the manifest ep names, picking the platform's entry from
// an index.
func (c *client) resolve(ctx context.Context, rc *repoClient, ref name.Reference) (*resolved, error) {
	body, mt, dig, err := rc.manifest(ctx, ref, c.o.maxManifest())
	if err != nil {
		return nil, err
	}
	r := &resolved{manifest: body, manifestDigest: dig}
	if mt.IsIndex() {
		want, err := ParsePlatform(c.o.Platform)
		if err != nil {
			return nil, err
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("decoding the index of %s: %w", ref, err)
		}
		var pick *v1.Descriptor
		var avail []string
		for i := range idx.Manifests {
			d := &idx.Manifests[i]
			if d.Platform == nil || !(d.MediaType.IsImage() || d.MediaType == "") {
				continue
			}
			avail = append(avail, d.Platform.String())
			if pick == nil && platformMatches(want, *d.Platform) {
				pick = d
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("%s has no image for %s (it has: %s); choose one with --platform", ref, want.String(), strings.Join(avail, ", "))
		}
		r.index, r.indexDigest = body, dig
		child := ref.Context().Digest(pick.Digest.String())
		body, mt, dig, err = rc.manifest(ctx, child, c.o.maxManifest())
		if err != nil {
			return nil, err
		}
		if int64(len(body)) != pick.Size {
			return nil, fmt.Errorf("the manifest of %s is %d bytes, its index says %d", child, len(body), pick.Size)
		}
		r.manifest, r.manifestDigest = body, dig
	}
	switch mt {
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return nil, fmt.Errorf("%s uses the docker schema 1 manifest format, which nook does not pull: push it again with a current tool", ref)
	}
	m, err := v1.ParseManifest(bytes.NewReader(r.manifest))
	if err != nil {
		return nil, fmt.Errorf("decoding the manifest of %s: %w", ref, err)
	}
	if m.Config.Digest.Hex == "" {
		return nil, fmt.Errorf("the manifest of %s names no configuration", ref)
	}
	r.parsed = m
	return r, nil
}

func (c *client) pullFrom(ctx context.Context, s *store.Store, named reference.Named, ep endpoint, prog *progress) (*PullResult, error) {
	rc, err := c.repo(ctx, ep.ref.Context(), ep.insecure, false, nil)
	if err != nil {
		return nil, err
	}
	r, err := c.resolve(ctx, rc, ep.ref)
	if err != nil {
		return nil, err
	}
	m := r.parsed
	cfgDesc := m.Config
	cfgBytes, err := rc.smallBlob(ctx, cfgDesc, c.o.maxManifest(), "the configuration of "+ep.ref.String())
	if err != nil {
		return nil, err
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		return nil, fmt.Errorf("decoding the configuration of %s: %w", ep.ref, err)
	}
	if c.o.Platform != "" && r.index == nil {
		want, err := ParsePlatform(c.o.Platform)
		if err != nil {
			return nil, err
		}
		got := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		if !platformMatches(want, got) {
			return nil, fmt.Errorf("%s is an image for %s, not %s", ep.ref, got.String(), want.String())
		}
	}
	var layers []v1.Descriptor
	for _, l := range m.Layers {
		if !l.MediaType.IsDistributable() && len(l.URLs) > 0 {
			return nil, fmt.Errorf("%s has a foreign layer %s, which nook does not pull", ep.ref, l.Digest)
		}
		layers = append(layers, l)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("%s is inconsistent: %d layers but %d diff IDs in its configuration", ep.ref, len(layers), len(cfg.RootFS.DiffIDs))
	}
	srcs := make([]layerSource, len(layers))
	for i, l := range layers {
		if !l.MediaType.IsLayer() && l.MediaType != "" {
			return nil, fmt.Errorf("%s: layer %s has media type %s, which is not a layer", ep.ref, l.Digest, l.MediaType)
		}
		blob, err := digest.Parse(l.Digest.String())
		if err != nil {
			return nil, fmt.Errorf("%s: layer digest %q: %w", ep.ref, l.Digest, err)
		}
		diff, err := digest.Parse(cfg.RootFS.DiffIDs[i].String())
		if err != nil {
			return nil, fmt.Errorf("%s: diff ID %q: %w", ep.ref, cfg.RootFS.DiffIDs[i], err)
		}
		desc := l
		srcs[i] = layerSource{
			blob:     blob,
			blobSize: l.Size,
			diffID:   diff,
			open: func(ctx context.Context) (io.ReadCloser, error) {
				return rc.blob(ctx, desc), nil
			},
		}
	}
	top, err := storeLayers(ctx, s, srcs, c.o.jobs(), prog)
	if err != nil {
		return nil, err
	}
	names := []string{named.String()}
	img, err := s.CreateImage(store.NewImage{
		TopLayer: top,
		Names:    names,
		Manifest: r.manifest,
		Config:   cfgBytes,
		Created:  cfg.Created.Time,
	})
	if err != nil {
		return nil, err
	}
	if r.index != nil {
		// Recorded so that name@index-digest finds the image and
		// 'images --digests' shows what a registry shows.
		if err := s.Storage().SetImageBigData(img.ID, "manifest-"+r.indexDigest.String(), r.index, manifestDigester); err != nil {
			return nil, fmt.Errorf("recording the index of %s: %w", ep.ref, err)
		}
	}
	prog.done()
	prog.printf("Digest: %s", r.digest())
	img, err = s.Lookup(img.ID)
	if err != nil {
		return nil, err
	}
	return &PullResult{Image: img, Name: named.String(), Digest: r.digest()}, nil
}

// PullAllTags pulls every tag of the repository ref names (a tag or
// digest in ref is ignored) and returns the names pulled.
func PullAllTags(ctx context.Context, s *store.Store, ref string, o Options) ([]string, error) {
	cfg, err := o.registries()
	if err != nil {
		return nil, err
	}
	repoName, _ := splitSuffix(ref)
	if strings.Contains(ref, "@") || strings.Count(ref, ":") > strings.Count(repoName, ":") {
		return nil, fmt.Errorf("--all-tags takes a repository without tag or digest, not %q", ref)
	}
	cands, err := cfg.candidates(repoName, o.Insecure)
	if err != nil {
		return nil, err
	}
	c := newClient(&o)
	var last error
	for _, cand := range cands {
		ep := cand.endpoints[len(cand.endpoints)-1]
		rc, err := c.repo(ctx, ep.ref.Context(), ep.insecure, false, nil)
		if err != nil {
			last = err
			continue
		}
		tags, err := rc.tags(ctx)
		if err != nil {
			last = err
			continue
		}
		var pulled []string
		for _, t := range tags {
			res, err := PullImage(ctx, s, reference.TrimNamed(cand.named).String()+":"+t, o)
			if err != nil {
				return pulled, err
			}
			pulled = append(pulled, res.Name)
		}
		return pulled, nil
	}
	return nil, fmt.Errorf("listing the tags of %s: %w", ref, last)
}

// digest is what a registry calls this image: the index's digest if it
// came from one.
func (r *resolved) digest() digest.Digest {
	if r.index != nil {
		return r.indexDigest
	}
	return r.manifestDigest
}

func manifestDigester(b []byte) (digest.Digest, error) { return digest.FromBytes(b), nil }

// Policy says when EnsureImage pulls.
type Policy string

// Pull policies, as podman's --pull.
const (
	PullMissing Policy = "missing" // only when the store lacks the image
	PullAlways  Policy = "always"  // every time
	PullNever   Policy = "never"   // never: the image must be in the store
	PullNewer   Policy = "newer"   // when the registry has a different image under the name
)

// ParsePolicy reads a --pull value: always, missing, never, newer (and
// docker's true/false).
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(s) {
	case "", "missing", "ifmissing", "ifnotpresent":
		return PullMissing, nil
	case "always", "true":
		return PullAlways, nil
	case "never", "false":
		return PullNever, nil
	case "newer", "ifnewer":
		return PullNewer, nil
	}
	return "", fmt.Errorf("invalid pull policy %q: use always, missing, never or newer", s)
}

// EnsureImage returns the image ref names, pulling it as policy says. A
// short name finds an image pulled through any search registry.
func EnsureImage(ctx context.Context, s *store.Store, ref string, policy Policy, o Options) (*store.Image, error) {
	local, lerr := lookupLocal(s, ref, &o)
	switch policy {
	case PullNever:
		if lerr != nil {
			return nil, lerr
		}
		return local, nil
	case PullMissing, "":
		if lerr == nil {
			return local, nil
		}
		if !errors.Is(lerr, store.ErrNotFound) {
			return nil, lerr
		}
	case PullNewer:
		if lerr == nil {
			same, err := remoteUnchanged(ctx, local, ref, o)
			if err == nil && same {
				return local, nil
			}
		}
	case PullAlways:
	default:
		return nil, fmt.Errorf("invalid pull policy %q", policy)
	}
	return Pull(ctx, s, ref, o)
}

// lookupLocal finds ref in the store as the store's rules say, then under
// each search registry's name for a short name.
func lookupLocal(s *store.Store, ref string, o *Options) (*store.Image, error) {
	img, err := s.Lookup(ref)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return img, err
	}
	cfg, cerr := o.registries()
	if cerr != nil {
		return nil, err
	}
	cands, cerr := cfg.candidates(ref, false)
	if cerr != nil {
		return nil, err
	}
	for _, c := range cands {
		if img, lerr := s.Lookup(c.named.String()); lerr == nil {
			return img, nil
		}
	}
	return nil, err
}

// remoteUnchanged asks the registry (HEAD) whether the name still points
// at the local image.
func remoteUnchanged(ctx context.Context, local *store.Image, ref string, o Options) (bool, error) {
	cfg, err := o.registries()
	if err != nil {
		return false, err
	}
	cands, err := cfg.candidates(ref, o.Insecure)
	if err != nil {
		return false, err
	}
	c := newClient(&o)
	for _, cand := range cands {
		for _, ep := range cand.endpoints {
			rc, err := c.repo(ctx, ep.ref.Context(), ep.insecure, false, nil)
			if err != nil {
				continue
			}
			d, err := rc.headManifest(ctx, ep.ref)
			if err != nil {
				continue
			}
			for _, have := range local.Digests {
				if have == d {
					return true, nil
				}
			}
			return local.Digest == d, nil
		}
	}
	return false, errors.New("no registry answered")
}
