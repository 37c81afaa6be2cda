package e2e

import (
	"os"
	"strings"
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

// TestSystemPrune: stopped containers, unused networks, dangling images
// and the build cache go; running containers, their images and networks
// in use stay.
func TestSystemPrune(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	used, unused := netName(t), netName(t)
	e.Must("network", "create", used)
	e.Must("network", "create", unused)
	t.Cleanup(func() { e.Run("network", "rm", used); e.Run("network", "rm", unused) })
	e.Must("run", "-d", "--name", "up", "--network", used, "busybox", "sleep", "60")
	e.Must("run", "--name", "down", "busybox", "true")
	e.Must("tag", "busybox", "other")
	e.Must("rmi", "other")
	out := e.Must("system", "prune", "-f")
	if !strings.Contains(out, "Deleted Containers:") {
		t.Errorf("prune output lacks the stopped container:\n%s", out)
	}
	ps := e.Must("ps", "-a", "--format", "{{.Names}}")
	if strings.TrimSpace(ps) != "up" {
		t.Errorf("containers after prune: %q, want only the running one", ps)
	}
	nets := e.Must("network", "ls", "--format", "{{.Name}}")
	if !strings.Contains(nets, used) || strings.Contains(nets, unused) {
		t.Errorf("networks after prune:\n%s\nwant %s kept and %s removed", nets, used, unused)
	}
	if imgs := e.Must("images", "-q"); strings.TrimSpace(imgs) == "" {
		t.Errorf("the running container's image was pruned")
	}
	e.Must("rm", "-f", "up")
}
