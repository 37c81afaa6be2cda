package e2e

import (
	"os"
	"testing"
)

// TestResetWithContainers: system reset removes a store that has created,
// running and exited containers.
func TestResetWithContainers(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	e.Must("create", "--name", "created", "busybox", "sleep", "60")
	e.Must("run", "-d", "--name", "running", "busybox", "sleep", "60")
	e.Must("run", "--name", "exited", "busybox", "true")
	e.Must("system", "reset", "-f")
	if _, err := os.Stat(e.Root); !os.IsNotExist(err) {
		t.Fatalf("store %s still there after reset (%v)", e.Root, err)
	}
	if out := e.Must("ps", "-aq"); out != "" {
		t.Fatalf("containers after reset: %q", out)
	}
}
