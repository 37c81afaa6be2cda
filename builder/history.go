package builder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.podman.io/storage"

	"github.com/nook-containers/nook/store"
)

// HistoryLine is one line of `nook history`, newest first.
type HistoryLine struct {
	ID         string // the image ID on the top line, "<missing>" below
	Created    time.Time
	CreatedBy  string
	Size       int64
	Comment    string
	EmptyLayer bool
}

// History lists an image's history with the size of each layer.
func History(s *store.Store, ref string) ([]HistoryLine, error) {
	img, err := s.Lookup(ref)
	if err != nil {
		return nil, err
	}
	cfg, err := img.OCIConfig()
	if err != nil {
		return nil, err
	}
	chain, err := s.LayerChain(img.TopLayer)
	if err != nil {
		return nil, err
	}
	var lines []HistoryLine
	li := 0
	for _, h := range cfg.History {
		l := HistoryLine{ID: "<missing>", Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if !h.EmptyLayer && li < len(chain) {
			l.Size = chain[li].UncompressedSize
			li++
		}
		lines = append(lines, l)
	}
	// Images with layers but no history (some imports): one line each.
	for ; li < len(chain); li++ {
		lines = append(lines, HistoryLine{ID: "<missing>", Created: chain[li].Created, Size: chain[li].UncompressedSize})
	}
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	if len(lines) > 0 {
		lines[0].ID = img.ID
	} else {
		lines = append(lines, HistoryLine{ID: img.ID, Created: img.Created})
	}
	return lines, nil
}

// PruneReport is what `nook builder prune` removed.
type PruneReport struct {
	Entries        int
	Layers         []string
	CacheMounts    int
	SpaceReclaimed int64
}

// Prune removes the build cache: the cache index, the file digest cache,
// the RUN --mount=type=cache directories, and the cached layers that no
// image or container uses. Images are not touched.
func Prune(s *store.Store) (*PruneReport, error) {
	dir := StateDir(s)
	(&leases{dir: filepath.Join(dir, "leases")}).sweep(s.Storage())
	idx := newCacheIndex(dir)
	entries, err := idx.entries()
	if err != nil {
		return nil, fmt.Errorf("reading the build cache: %w", err)
	}
	rep := &PruneReport{}
	if rep.Entries, err = idx.removeAll(); err != nil {
		return rep, err
	}
	_ = os.Remove(filepath.Join(dir, "hashes.json"))
	mounts, _ := os.ReadDir(filepath.Join(dir, "cache-mounts"))
	for _, m := range mounts {
		p := filepath.Join(dir, "cache-mounts", m.Name())
		rep.SpaceReclaimed += dirSize(p)
		if err := os.RemoveAll(p); err != nil {
			return rep, fmt.Errorf("removing cache mount %s: %w", p, err)
		}
		rep.CacheMounts++
	}
	// Layers the cache made that nothing else uses, children first.
	st := s.Storage()
	used := map[string]bool{}
	layers, err := st.Layers()
	if err != nil {
		return rep, err
	}
	byID := map[string]*storage.Layer{}
	for i := range layers {
		byID[layers[i].ID] = &layers[i]
	}
	mark := func(id string) {
		for id != "" && !used[id] {
			used[id] = true
			if l := byID[id]; l != nil {
				id = l.Parent
			} else {
				return
			}
		}
	}
	imgs, err := st.Images()
	if err != nil {
		return rep, err
	}
	for _, img := range imgs {
		mark(img.TopLayer)
	}
	cs, err := st.Containers()
	if err != nil {
		return rep, err
	}
	for _, c := range cs {
		mark(c.LayerID)
	}
	cached := map[string]bool{}
	for _, e := range entries {
		if e.Layer != "" && !used[e.Layer] && byID[e.Layer] != nil {
			cached[e.Layer] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for id := range cached {
			hasChild := false
			for _, l := range layers {
				if l.Parent == id && byID[l.ID] != nil {
					hasChild = true
					break
				}
			}
			if hasChild {
				continue
			}
			size, _ := st.LayerSize(id)
			if err := st.DeleteLayer(id); err != nil && !errors.Is(err, storage.ErrLayerUnknown) {
				return rep, fmt.Errorf("deleting cached layer %s: %w", store.ShortID(id), err)
			}
			delete(cached, id)
			delete(byID, id)
			rep.Layers = append(rep.Layers, id)
			rep.SpaceReclaimed += size
			changed = true
		}
	}
	return rep, nil
}

func dirSize(p string) int64 {
	var n int64
	_ = filepath.Walk(p, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// CacheLayers are the layers the build cache refers to and those running
// builds hold: `nook image prune` keeps them (docker leaves the build
// cache to `builder prune`).
func CacheLayers(s *store.Store) (map[string]bool, error) {
	dir := StateDir(s)
	entries, err := newCacheIndex(dir).entries()
	if err != nil {
		return nil, fmt.Errorf("reading the build cache: %w", err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		if e.Layer != "" {
			out[e.Layer] = true
		}
	}
	for _, id := range (&leases{dir: filepath.Join(dir, "leases")}).held() {
		out[id] = true
	}
	return out, nil
}
