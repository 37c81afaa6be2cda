package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/distribution/reference"
	"go.podman.io/storage"
)

// Report is one line of what a removal did: "Untagged: NAME" or
// "Deleted: sha256:ID", as docker prints them.
type Report struct {
	Untagged string
	Deleted  string
}

func (r Report) String() string {
	if r.Untagged != "" {
		return "Untagged: " + r.Untagged
	}
	return "Deleted: sha256:" + r.Deleted
}

// InUseError says which container keeps an image.
type InUseError struct {
	Image     string
	Container string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("image %s is in use by container %s: remove the container first (nook rm %s) or force with -f",
		e.Image, e.Container, e.Container)
}

// users lists the containers built on image id, by name.
func (s *Store) users(id string) ([]string, error) {
	cs, err := s.s.Containers()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cs {
		if c.ImageID == id {
			name := ShortID(c.ID)
			if len(c.Names) > 0 {
				name = c.Names[0]
			}
			out = append(out, name)
		}
	}
	return out, nil
}

// RemoveImage removes what ref names, with docker's rules: a name of an
// image that has other names is only untagged; an image used by a
// container is refused unless force (which then only untags it); an ID of
// an image with several names needs force.
func (s *Store) RemoveImage(ref string, force bool) ([]Report, error) {
	img, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	byID := strings.HasPrefix(img.ID, strings.TrimPrefix(ref, "sha256:")) && !strings.ContainsAny(strings.TrimPrefix(ref, "sha256:"), ":/@")
	var name string
	if !byID {
		if named, err := reference.ParseNormalizedNamed(ref); err == nil {
			name = reference.TagNameOnly(named).String()
			if !contains(img.Names, name) && contains(img.Names, "localhost/"+reference.FamiliarString(reference.TagNameOnly(named))) {
				name = "localhost/" + reference.FamiliarString(reference.TagNameOnly(named))
			}
			if _, dig := named.(reference.Digested); dig {
				name = ""
			}
		}
	}
	if name != "" && len(img.Names) > 1 {
		if err := s.s.RemoveNames(img.ID, []string{name}); err != nil {
			return nil, fmt.Errorf("untagging %s: %w", ref, err)
		}
		return []Report{{Untagged: FamiliarName(name)}}, nil
	}
	users, err := s.users(img.ID)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		if !force {
			return nil, &InUseError{Image: ref, Container: users[0]}
		}
		// Forced: untag, keep the image for its containers.
		var reps []Report
		for _, n := range img.Names {
			reps = append(reps, Report{Untagged: FamiliarName(n)})
		}
		if err := s.s.SetNames(img.ID, nil); err != nil {
			return nil, fmt.Errorf("untagging %s: %w", ref, err)
		}
		return reps, nil
	}
	if byID && len(img.Names) > 1 && !force {
		return nil, fmt.Errorf("unable to delete %s (must be forced): image is referenced in multiple repositories (%s)",
			ShortID(img.ID), strings.Join(familiar(img.Names), ", "))
	}
	var reps []Report
	for _, n := range img.Names {
		reps = append(reps, Report{Untagged: FamiliarName(n)})
	}
	if _, err := s.s.DeleteImage(img.ID, true); err != nil {
		if errors.Is(err, storage.ErrImageUnknown) {
			return nil, &ImageNotFoundError{Name: ref}
		}
		return nil, fmt.Errorf("deleting image %s: %w", ShortID(img.ID), err)
	}
	return append(reps, Report{Deleted: img.ID}), nil
}

func familiar(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = FamiliarName(n)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// PruneResult is what a prune removed.
type PruneResult struct {
	Images         []string // IDs
	Layers         []string // orphan layer IDs
	SpaceReclaimed int64
}

// orphanGrace protects a layer without a pending name (see PutLayer) that
// another invocation has just stored and may be about to record an image
// over.
const orphanGrace = time.Minute

// PruneImages removes dangling images (no names), or with all every image
// no container uses, and then layers that no image or container reaches.
func (s *Store) PruneImages(all bool) (*PruneResult, error) {
	return s.PruneImagesKeeping(all, nil)
}

// PruneImagesKeeping is PruneImages that also keeps the layers in keep and
// their parents (the build cache's layers: `image prune` leaves the build
// cache to `builder prune`, as docker does).
func (s *Store) PruneImagesKeeping(all bool, keep map[string]bool) (*PruneResult, error) {
	res := &PruneResult{}
	imgs, err := s.s.Images()
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		if len(img.Names) > 0 && !all {
			continue
		}
		users, err := s.users(img.ID)
		if err != nil {
			return nil, err
		}
		if len(users) > 0 {
			continue
		}
		size, _ := s.s.ImageSize(img.ID)
		if _, err := s.s.DeleteImage(img.ID, true); err != nil {
			if errors.Is(err, storage.ErrImageUnknown) {
				continue // removed concurrently
			}
			return res, fmt.Errorf("deleting image %s: %w", ShortID(img.ID), err)
		}
		res.Images = append(res.Images, img.ID)
		res.SpaceReclaimed += size
	}
	n, size, err := s.pruneOrphanLayers(keep)
	res.Layers = n
	res.SpaceReclaimed += size
	return res, err
}

// pruneOrphanLayers deletes layers that no image or container reaches
// (left by an import that was killed between storing its layer and
// recording its image).
func (s *Store) pruneOrphanLayers(keep map[string]bool) ([]string, int64, error) {
	layers, err := s.s.Layers()
	if err != nil {
		return nil, 0, err
	}
	byID := map[string]*storage.Layer{}
	for i := range layers {
		byID[layers[i].ID] = &layers[i]
	}
	used := map[string]bool{}
	mark := func(id string) {
		for id != "" && !used[id] {
			used[id] = true
			l := byID[id]
			if l == nil {
				return
			}
			id = l.Parent
		}
	}
	imgs, err := s.s.Images()
	if err != nil {
		return nil, 0, err
	}
	for _, img := range imgs {
		mark(img.TopLayer)
		for _, l := range img.MappedTopLayers {
			mark(l)
		}
	}
	cs, err := s.s.Containers()
	if err != nil {
		return nil, 0, err
	}
	for _, c := range cs {
		mark(c.LayerID)
	}
	for id := range keep {
		mark(id)
	}
	// Children before parents.
	var removed []string
	var total int64
	for changed := true; changed; {
		changed = false
		for _, l := range layers {
			if used[l.ID] || contains(removed, l.ID) {
				continue
			}
			// A layer whose storing invocation is known is kept exactly
			// while that invocation lives; any other one for a grace time.
			if pending, alive := pendingState(l.Names); alive || !pending && l.Created.After(time.Now().Add(-orphanGrace)) {
				continue
			}
			if hasChild(layers, l.ID, removed) {
				continue
			}
			size, _ := s.s.LayerSize(l.ID)
			if err := s.s.DeleteLayer(l.ID); err != nil {
				if errors.Is(err, storage.ErrLayerUnknown) {
					continue
				}
				return removed, total, fmt.Errorf("deleting orphan layer %s: %w", ShortID(l.ID), err)
			}
			removed = append(removed, l.ID)
			total += size
			changed = true
		}
	}
	return removed, total, nil
}

func hasChild(layers []storage.Layer, id string, removed []string) bool {
	for _, l := range layers {
		if l.Parent == id && !contains(removed, l.ID) {
			return true
		}
	}
	return false
}
