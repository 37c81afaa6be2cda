package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/storage"
)

// Big-data keys of an image record. They match podman's, so that the same
// record reads the same way to both tools.
const (
	keyManifest = "manifest"
)

func manifestKey(d digest.Digest) string { return "manifest-" + d.String() }

// Image is an image record as nook shows it.
type Image struct {
	ID       string        // config digest, hex
	Names    []string      // fully qualified references, e.g. docker.io/library/busybox:latest
	Digest   digest.Digest // manifest digest
	Digests  []digest.Digest
	TopLayer string
	Created  time.Time
	Size     int64 // unpacked size of all layers
	Manifest []byte
	Config   []byte
}

// OCIConfig decodes the image configuration (docker-compatible: it keeps
// Healthcheck, OnBuild and Shell, which the OCI schema lacks).
func (i *Image) OCIConfig() (*v1.ConfigFile, error) {
	var c v1.ConfigFile
	if err := json.Unmarshal(i.Config, &c); err != nil {
		return nil, fmt.Errorf("decoding the configuration of image %s: %w", ShortID(i.ID), err)
	}
	return &c, nil
}

// OCIManifest decodes the image manifest.
func (i *Image) OCIManifest() (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(i.Manifest, &m); err != nil {
		return nil, fmt.Errorf("decoding the manifest of image %s: %w", ShortID(i.ID), err)
	}
	return &m, nil
}

// ShortID is the 12-character form of an ID.
func ShortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// NormalizeName turns what a user typed ("busybox", "localhost:5000/a/b:1")
// into the stored form (docker.io/library/busybox:latest), with docker's
// rules. A digest reference keeps its digest.
func NormalizeName(name string) (reference.Named, error) {
	r, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, fmt.Errorf("invalid reference format %q: %w", name, err)
	}
	return reference.TagNameOnly(r), nil
}

// FamiliarName is the short form docker shows (busybox:latest for
// docker.io/library/busybox:latest).
func FamiliarName(stored string) string {
	r, err := reference.ParseNormalizedNamed(stored)
	if err != nil {
		return stored
	}
	return reference.FamiliarString(r)
}

func (s *Store) fill(img *storage.Image) (*Image, error) {
	out := &Image{
		ID:       img.ID,
		Names:    append([]string(nil), img.Names...),
		Digest:   img.Digest,
		Digests:  append([]digest.Digest(nil), img.Digests...),
		TopLayer: img.TopLayer,
		Created:  img.Created,
	}
	var err error
	if out.Manifest, err = s.s.ImageBigData(img.ID, keyManifest); err != nil {
		return nil, fmt.Errorf("reading the manifest of image %s: %w", ShortID(img.ID), err)
	}
	if out.Config, err = s.s.ImageBigData(img.ID, "sha256:"+img.ID); err != nil {
		return nil, fmt.Errorf("reading the configuration of image %s: %w", ShortID(img.ID), err)
	}
	if out.Size, err = s.s.ImageSize(img.ID); err != nil {
		out.Size = -1
	}
	return out, nil
}

// Images lists every image, newest first.
func (s *Store) Images() ([]*Image, error) {
	imgs, err := s.s.Images()
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	out := make([]*Image, 0, len(imgs))
	for i := range imgs {
		im, err := s.fill(&imgs[i])
		if err != nil {
			// A record whose data is being written by another invocation
			// right now: skip it rather than fail the listing.
			continue
		}
		out = append(out, im)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Created.After(out[b].Created) })
	return out, nil
}

// ImageNotFoundError names the image that was asked for.
type ImageNotFoundError struct{ Name string }

func (e *ImageNotFoundError) Error() string {
	return fmt.Sprintf("image %q not found: see 'nook images' for the images in the store", e.Name)
}
func (e *ImageNotFoundError) Is(target error) bool { return target == ErrNotFound }

// AmbiguousIDError is an ID prefix that matches several images.
type AmbiguousIDError struct {
	Prefix  string
	Matches []string
}

func (e *AmbiguousIDError) Error() string {
	return fmt.Sprintf("image ID prefix %q is ambiguous: it matches %d images (%s); give more characters",
		e.Prefix, len(e.Matches), strings.Join(e.Matches, ", "))
}

func isHexPrefix(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Lookup resolves what a user typed: a name (busybox, busybox:1,
// localhost/x), a name with a digest, an image ID, "sha256:ID" or a unique
// ID prefix, in docker's order (names before ID prefixes).
func (s *Store) Lookup(ref string) (*Image, error) {
	img, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	return s.fill(img)
}

func (s *Store) lookup(ref string) (*storage.Image, error) {
	if ref == "" {
		return nil, errors.New("no image name given")
	}
	id := strings.TrimPrefix(ref, "sha256:")
	if len(id) == 64 && isHexPrefix(id) {
		if img, err := s.s.Image(id); err == nil {
			return img, nil
		}
	}
	named, nerr := reference.ParseNormalizedNamed(ref)
	if nerr == nil {
		if dig, ok := named.(reference.Digested); ok {
			imgs, err := s.s.ImagesByDigest(dig.Digest())
			if err == nil {
				for _, img := range imgs {
					if hasRepo(img.Names, reference.TrimNamed(named).Name()) {
						return img, nil
					}
				}
				if len(imgs) > 0 && reference.TrimNamed(named).Name() == "" {
					return imgs[0], nil
				}
			}
			return nil, &ImageNotFoundError{Name: ref}
		}
		full := reference.TagNameOnly(named).String()
		if img, err := s.s.Image(full); err == nil {
			return img, nil
		}
		// Images named localhost/NAME (podman's convention for local
		// images) answer to NAME too.
		if !strings.Contains(ref, "/") {
			if img, err := s.s.Image("localhost/" + reference.FamiliarString(reference.TagNameOnly(named))); err == nil {
				return img, nil
			}
		}
	}
	if isHexPrefix(id) && (nerr != nil || !strings.ContainsAny(ref, ":/")) {
		imgs, err := s.s.Images()
		if err != nil {
			return nil, err
		}
		var matches []*storage.Image
		for i := range imgs {
			if strings.HasPrefix(imgs[i].ID, id) {
				matches = append(matches, &imgs[i])
			}
		}
		switch len(matches) {
		case 1:
			return matches[0], nil
		case 0:
		default:
			var ids []string
			for _, m := range matches {
				ids = append(ids, ShortID(m.ID))
			}
			return nil, &AmbiguousIDError{Prefix: ref, Matches: ids}
		}
	}
	if nerr != nil {
		return nil, fmt.Errorf("invalid reference format %q: repository names must be lowercase, with an optional :tag or @digest", ref)
	}
	return nil, &ImageNotFoundError{Name: ref}
}

func hasRepo(names []string, repo string) bool {
	for _, n := range names {
		r, err := reference.ParseNormalizedNamed(n)
		if err == nil && r.Name() == repo {
			return true
		}
	}
	return false
}

// NewImage describes an image to record over an existing top layer.
type NewImage struct {
	TopLayer string   // "" for an image with no layers
	Names    []string // normalized names; a name already used by another image moves here
	Manifest []byte
	Config   []byte
	Created  time.Time
}

// CreateImage records an image. The ID is the config digest; recording the
// same config again returns the existing image with the names added.
func (s *Store) CreateImage(n NewImage) (*Image, error) {
	cfgDigest := digest.FromBytes(n.Config)
	id := cfgDigest.Encoded()
	mDigest := digest.FromBytes(n.Manifest)
	// Names no other image holds are recorded with the image, in one
	// step, so that a kill -9 right after never leaves a nameless
	// (<none>) image behind; names that move from another image are added
	// afterwards, as storage only moves names on AddNames.
	var free []string
	for _, name := range n.Names {
		if _, err := s.s.Image(name); errors.Is(err, storage.ErrImageUnknown) {
			free = append(free, name)
		}
	}
	opts := &storage.ImageOptions{
		CreationDate: n.Created,
		Digest:       mDigest,
		BigData: []storage.ImageBigDataOption{
			{Key: cfgDigest.String(), Data: n.Config, Digest: cfgDigest},
			{Key: manifestKey(mDigest), Data: n.Manifest, Digest: mDigest},
			{Key: keyManifest, Data: n.Manifest, Digest: mDigest},
		},
	}
	img, err := s.s.CreateImage(id, free, n.TopLayer, "", opts)
	if errors.Is(err, storage.ErrDuplicateName) {
		// Another invocation took one of the names meanwhile.
		free = nil
		img, err = s.s.CreateImage(id, nil, n.TopLayer, "", opts)
	}
	if errors.Is(err, storage.ErrDuplicateID) {
		free = nil // the image existed: none of the names was recorded
		img, err = s.s.Image(id)
		if err == nil {
			err = s.s.SetImageBigData(id, manifestKey(mDigest), n.Manifest, func([]byte) (digest.Digest, error) { return mDigest, nil })
		}
	}
	if err != nil {
		return nil, fmt.Errorf("recording image %s: %w", ShortID(id), err)
	}
	if len(free) < len(n.Names) {
		// The rest (names that move here from other images, or all of
		// them when the image existed) are added now.
		if err := s.s.AddNames(img.ID, n.Names); err != nil {
			return nil, fmt.Errorf("naming image %s: %w", ShortID(id), err)
		}
	}
	s.clearPending(n.TopLayer)
	return s.Lookup(img.ID)
}

// Tag adds the name target (normalized) to the image ref resolves to. A
// name held by another image moves, as in docker.
func (s *Store) Tag(ref, target string) error {
	img, err := s.lookup(ref)
	if err != nil {
		return err
	}
	named, err := NormalizeName(target)
	if err != nil {
		return err
	}
	if _, ok := named.(reference.Digested); ok {
		return fmt.Errorf("refusing to create a tag with a digest reference %q", target)
	}
	if err := s.s.AddNames(img.ID, []string{named.String()}); err != nil {
		return fmt.Errorf("tagging image %s as %s: %w", ShortID(img.ID), target, err)
	}
	return nil
}
