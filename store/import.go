package store

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOptions describe an image made from one root filesystem tarball.
type ImportOptions struct {
	Names   []string               // normalized names
	Config  func(*v1.Config) error // applies --change instructions
	Message string                 // history comment
	Created time.Time              // zero: now
}

// Import stores a root filesystem tarball (plain or compressed) as a
// one-layer image. If anything fails, nothing is recorded and the layer is
// removed.
func (s *Store) Import(r io.Reader, o ImportOptions) (*Image, error) {
	layer, err := s.PutLayer("", r)
	if err != nil {
		return nil, err
	}
	created := o.Created
	if created.IsZero() {
		created = time.Now().UTC()
	}
	cfg := &v1.ConfigFile{
		Created:      v1.Time{Time: created},
		Architecture: goarch(),
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{mustHash(layer.DiffID)}},
		History: []v1.History{{
			Created:   v1.Time{Time: created},
			CreatedBy: "nook import",
			Comment:   o.Message,
		}},
	}
	if o.Config != nil {
		if err := o.Config(&cfg.Config); err != nil {
			_ = s.DeleteLayer(layer.ID)
			return nil, err
		}
	}
	img, err := s.CommitImage(layer.ID, []Layer{*layer}, cfg, o.Names)
	if err != nil {
		_ = s.DeleteLayer(layer.ID)
		return nil, err
	}
	return img, nil
}

// CommitImage writes the config and an OCI manifest for layers (base first,
// uncompressed descriptors) and records the image over top.
func (s *Store) CommitImage(top string, layers []Layer, cfg *v1.ConfigFile, names []string) (*Image, error) {
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding image config: %w", err)
	}
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageConfig,
			Digest:    digest.FromBytes(cfgBytes),
			Size:      int64(len(cfgBytes)),
		},
		Layers: []ocispec.Descriptor{},
	}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageLayer,
			Digest:    l.DiffID,
			Size:      l.Size,
		})
	}
	mBytes, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding image manifest: %w", err)
	}
	return s.CreateImage(NewImage{TopLayer: top, Names: names, Manifest: mBytes, Config: cfgBytes, Created: cfg.Created.Time})
}

func mustHash(d digest.Digest) v1.Hash {
	h, err := v1.NewHash(d.String())
	if err != nil {
		return v1.Hash{Algorithm: "sha256", Hex: d.Encoded()}
	}
	return h
}

// ImagesInUse is the set of image IDs some container is built on.
func (s *Store) ImagesInUse() (map[string]bool, error) {
	cs, err := s.s.Containers()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, c := range cs {
		out[c.ImageID] = true
	}
	return out, nil
}
