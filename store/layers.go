package store

import (
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"
)

// Layer is a stored layer as image records need it.
type Layer struct {
	ID     string
	DiffID digest.Digest // sha256 of the uncompressed tar
	Size   int64         // uncompressed tar size
}

// PutLayer stores a layer from a tar stream (plain, gzip, bzip2, xz or
// zstd) on top of parent ("" for a base layer). The tar is unpacked inside a
// chroot of the layer directory: entries with "..", absolute symlinks and
// hard links cannot reach outside it. A failed or interrupted put leaves no
// layer behind.
func (s *Store) PutLayer(parent string, diff io.Reader) (*Layer, error) {
	l, _, err := s.s.PutLayer("", parent, nil, "", false, nil, diff)
	if err != nil {
		return nil, fmt.Errorf("storing layer: %w", err)
	}
	return &Layer{ID: l.ID, DiffID: l.UncompressedDigest, Size: l.UncompressedSize}, nil
}

// DeleteLayer removes a layer no image uses (cleanup after a failed step).
func (s *Store) DeleteLayer(id string) error { return s.s.DeleteLayer(id) }

// LayerChain is the layers of an image, base first.
func (s *Store) LayerChain(top string) ([]*storage.Layer, error) {
	var chain []*storage.Layer
	for id := top; id != ""; {
		l, err := s.s.Layer(id)
		if err != nil {
			return nil, fmt.Errorf("reading layer %s: %w", ShortID(id), err)
		}
		chain = append([]*storage.Layer{l}, chain...)
		id = l.Parent
	}
	return chain, nil
}

// LayerDiff streams a layer's uncompressed tar.
func (s *Store) LayerDiff(id string) (io.ReadCloser, error) {
	l, err := s.s.Layer(id)
	if err != nil {
		return nil, fmt.Errorf("reading layer %s: %w", ShortID(id), err)
	}
	unc := false
	_ = unc
	return s.s.Diff(l.Parent, id, &storage.DiffOptions{Compression: nil})
}
