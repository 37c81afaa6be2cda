package builder

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestCacheIndexConcurrentAndCrashSafe(t *testing.T) {
	c := newCacheIndex(t.TempDir())
	key := chainKey("parent", "step", "content")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if err := c.put(key, &cacheEntry{Layer: fmt.Sprintf("layer-%d", i), DiffID: "sha256:x"}); err != nil {
					t.Error(err)
				}
				if e := c.get(key); e == nil || e.DiffID != "sha256:x" {
					t.Errorf("read a partial or missing entry: %+v", e)
				}
			}
		}(i)
	}
	wg.Wait()
	// A writer killed mid-write leaves a temporary file: never read.
	other := chainKey("p2", "s", "c")
	dir := filepath.Dir(c.path(other))
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, ".tmp-"+other+".json-123"), []byte(`{"layer":"half`), 0o600)
	if e := c.get(other); e != nil {
		t.Fatalf("a temporary file was used as an entry: %+v", e)
	}
	// A truncated entry (a disk that lied about fsync) is a miss, not an error.
	os.WriteFile(c.path(other), []byte(`{"layer":"x`), 0o600)
	if e := c.get(other); e != nil {
		t.Fatalf("a corrupt entry was used: %+v", e)
	}
	ents, err := c.entries()
	if err != nil || len(ents) != 1 {
		t.Fatalf("entries = %v, %v; want the one whole entry", ents, err)
	}
	if n, err := c.removeAll(); err != nil || n != 2 {
		t.Fatalf("removeAll = %d, %v", n, err)
	}
	if c.get(key) != nil {
		t.Fatal("an entry survived removeAll")
	}
	if c.get("../../etc/passwd") != nil || c.put("bad", &cacheEntry{}) == nil {
		t.Fatal("invalid keys must be refused")
	}
}

func TestChainKeyDependsOnEveryPart(t *testing.T) {
	base := chainKey("a", "b", "c")
	for _, k := range []string{chainKey("x", "b", "c"), chainKey("a", "x", "c"), chainKey("a", "b", "x"), chainKey("a", "b\nc", "")} {
		if k == base {
			t.Fatal("a changed part gave the same key")
		}
	}
}
