package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// cacheIndex maps step keys to the layers they made. Each entry is one
// small file written to a temporary name and renamed into place, so that
// concurrent builds never see a partial entry and a build killed at any
// moment leaves either no entry or a whole one. An entry whose layer is
// gone (pruned) is a miss.
type cacheIndex struct {
	dir string
}

// cacheEntry is what a step made.
type cacheEntry struct {
	// Layer is the stored layer; "" when the step changed nothing (a
	// WORKDIR that existed): the parent stays the top layer.
	Layer   string    `json:"layer,omitempty"`
	DiffID  string    `json:"diffID,omitempty"`
	Size    int64     `json:"size,omitempty"`
	Created time.Time `json:"created"`
}

func newCacheIndex(root string) *cacheIndex {
	return &cacheIndex{dir: filepath.Join(root, "cache")}
}

func validKey(k string) bool {
	if len(k) != 64 {
		return false
	}
	for _, c := range k {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (c *cacheIndex) path(key string) string {
	return filepath.Join(c.dir, key[:2], key+".json")
}

// get returns the entry for key, or nil.
func (c *cacheIndex) get(key string) *cacheEntry {
	if !validKey(key) {
		return nil
	}
	b, err := os.ReadFile(c.path(key))
	if err != nil {
		return nil
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil {
		return nil
	}
	return &e
}

// put records an entry atomically.
func (c *cacheIndex) put(key string, e *cacheEntry) error {
	if !validKey(key) {
		return fmt.Errorf("invalid cache key %q", key)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return writeFileAtomic(c.path(key), b)
}

// remove deletes every entry (builder prune) and reports how many.
func (c *cacheIndex) removeAll() (int, error) {
	n := 0
	err := filepath.WalkDir(c.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".json") {
			if err := os.Remove(p); err == nil {
				n++
			}
		}
		return nil
	})
	return n, err
}

// entries lists all entries.
func (c *cacheIndex) entries() (map[string]*cacheEntry, error) {
	out := map[string]*cacheEntry{}
	err := filepath.WalkDir(c.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		key := strings.TrimSuffix(filepath.Base(p), ".json")
		if e := c.get(key); e != nil {
			out[key] = e
		}
		return nil
	})
	return out, err
}

// writeFileAtomic writes data to a temporary file beside p, syncs it and
// renames it over p.
func writeFileAtomic(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// chainKey combines a parent's key, a step's plan key and the digest of
// the data it reads.
func chainKey(parent, stepKey, content string) string {
	h := sha256.New()
	fmt.Fprintf(h, "nook-build-v1\n%s\n%s\n%s\n", parent, stepKey, content)
	return hex.EncodeToString(h.Sum(nil))
}

// hashCache persistence: one JSON file, replaced atomically; concurrent
// builds may lose each other's additions, which only costs a re-hash.
func loadHashCache(p string) *hashCache {
	c := &hashCache{path: p, entries: map[string]string{}}
	if b, err := os.ReadFile(p); err == nil {
		_ = json.Unmarshal(b, &c.entries)
	}
	return c
}

func (c *hashCache) save() error {
	if c == nil || !c.dirty {
		return nil
	}
	if len(c.entries) > 200000 {
		c.entries = map[string]string{}
	}
	b, err := json.Marshal(c.entries)
	if err != nil {
		return err
	}
	return writeFileAtomic(c.path, b)
}
