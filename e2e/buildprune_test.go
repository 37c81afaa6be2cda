package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestImagePruneKeepsBuildCache: `image prune` leaves the build cache to
// `builder prune`, as docker does, so a rebuild after it is fully cached.
func TestImagePruneKeepsBuildCache(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	dir := filepath.Join(e.Dir, "ctx")
	writeFiles(t, dir, map[string]string{
		"a.txt": "a",
		"Dockerfile": "FROM busybox AS build\nCOPY a.txt /a\nRUN cp /a /b\n" +
			"FROM busybox\nCOPY --from=build /b /b\n",
	})
	e.Must("build", "-t", "app", dir)
	// The build stage's layers belong to no image: only the cache keeps
	// them. The last stage's layer goes with the image.
	e.Must("rmi", "app")
	e.Must("image", "prune", "-f")
	r := e.Run("build", "-t", "app", dir)
	if r.Code != 0 {
		t.Fatalf("rebuild: %s", r.Stderr)
	}
	if n := stepLines(r.Stderr, "CACHED"); n != 2 {
		t.Fatalf("rebuild after image prune: %d CACHED steps, want 2 (the build stage)\n%s", n, r.Stderr)
	}
	e.Must("builder", "prune", "-f")
	r = e.Run("build", "-t", "app", dir)
	if n := stepLines(r.Stderr, "CACHED"); r.Code != 0 || n != 0 {
		t.Fatalf("rebuild after builder prune: exit %d, %d CACHED steps, want 0\n%s", r.Code, n, r.Stderr)
	}
}

// TestBuildRunSeccomp: RUN steps run under docker's default seccomp
// profile, as in docker's builds.
func TestBuildRunSeccomp(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	dir := filepath.Join(e.Dir, "ctx")
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM busybox\nRUN grep '^Seccomp:' /proc/self/status > /seccomp\n",
	})
	e.Must("build", "-t", "sc", dir)
	out := e.Must("run", "--rm", "sc", "cat", "/seccomp")
	if !strings.Contains(out, "Seccomp:\t2") {
		t.Fatalf("RUN step seccomp status %q, want mode 2 (filter)", out)
	}
}
