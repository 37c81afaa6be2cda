package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// netName is a network name of this test's own: networks belong to the
// user (or to root), not to a store, so parallel tests must not share
// names.
func netName(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:])
	return "e2e-" + hex.EncodeToString(b[:])
}

func TestNetworkCommands(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	name := netName(t)
	id := strings.TrimSpace(e.Must("network", "create", "--label", "suite=e2e", "--label", "owner="+name, name))
	if len(id) != 64 {
		t.Fatalf("create printed %q, want a 64-hex ID", id)
	}
	t.Cleanup(func() { e.Run("network", "rm", name) })

	ls := e.Must("network", "ls")
	if !strings.HasPrefix(ls, "NETWORK ID") || !strings.Contains(ls, id[:12]+"   "+name) || !strings.Contains(ls, "nook ") {
		t.Fatalf("network ls:\n%s", ls)
	}
	if q := e.Must("network", "ls", "-q", "--filter", "label=owner="+name); strings.TrimSpace(q) != id[:12] {
		t.Fatalf("ls -q --filter: %q", q)
	}
	if f := e.Must("network", "ls", "--filter", "name="+name, "--format", "{{.Name}} {{.Driver}} {{.Label \"suite\"}}"); f != name+" bridge e2e\n" {
		t.Fatalf("ls --format: %q", f)
	}

	var docs []struct {
		Name, Id, Driver string
		IPAM             struct {
			Config []struct{ Subnet, Gateway string }
		}
		Labels map[string]string
	}
	if err := json.Unmarshal([]byte(e.Must("network", "inspect", name, id[:10])), &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Id != id || docs[1].Name != name || docs[0].Labels["suite"] != "e2e" ||
		!strings.HasSuffix(docs[0].IPAM.Config[0].Subnet, ".0/24") || docs[0].IPAM.Config[0].Gateway == "" {
		t.Fatalf("inspect: %+v", docs)
	}
	if s := e.Must("network", "inspect", "-f", "{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}}", "bridge"); s != "nook 10.88.0.0/16\n" {
		t.Fatalf("inspect bridge: %q", s)
	}

	// Bad input: a clear error naming what is wrong, exit 125, nothing made.
	e.Fails([]string{"already exists"}, "network", "create", name)
	e.Fails([]string{"invalid subnet", "10.90.0.1/24"}, "network", "create", "--subnet", "10.90.0.1/24", name+"x")
	e.Fails([]string{"overlaps"}, "network", "create", "--subnet", docs[0].IPAM.Config[0].Subnet, name+"y")
	e.Fails([]string{"not supported"}, "network", "create", "--driver", "macvlan", name+"z")
	e.Fails([]string{"invalid network name"}, "network", "create", "bad/name")
	e.Fails([]string{"pre-defined"}, "network", "rm", "bridge")
	if r := e.Fails([]string{"network " + name + "-missing not found"}, "network", "rm", name+"-missing"); r.Code != 125 {
		t.Fatalf("rm of a missing network: exit %d", r.Code)
	}
	for _, n := range []string{name + "x", name + "y", name + "z"} {
		if r := e.Run("network", "inspect", n); r.Code == 0 {
			t.Fatalf("network %s exists after a failed create", n)
		}
	}
	e.Must("network", "rm", "-f", name+"-missing")

	// --ignore makes a second create a no-op (compose's case).
	if again := strings.TrimSpace(e.Must("network", "create", "--ignore", name)); again != id {
		t.Fatalf("create --ignore printed %q", again)
	}

	// prune: only unused networks matching the filter go.
	other := netName(t)
	e.Must("network", "create", "--label", "suite=other", other)
	t.Cleanup(func() { e.Run("network", "rm", other) })
	out := e.Must("network", "prune", "-f", "--filter", "label=owner="+name)
	if out != "Deleted Networks:\n"+name+"\n" {
		t.Fatalf("prune: %q", out)
	}
	if r := e.Run("network", "inspect", other); r.Code != 0 {
		t.Fatalf("prune removed a network outside its filter: %s", r.Stderr)
	}
	if out := e.Must("network", "rm", other); out != other+"\n" {
		t.Fatalf("rm printed %q", out)
	}
}
