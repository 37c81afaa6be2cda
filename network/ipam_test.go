package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func testNet(subnet, gw, rng string) *Network {
	return &Network{Name: "t", ID: strings.Repeat("ab", 32), Subnet: subnet, Gateway: gw, IPRange: rng, Leases: map[string]*Lease{}}
}

func take(t *testing.T, n *Network, id string) string {
	t.Helper()
	a, err := allocate(n, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	n.Leases[id] = &Lease{ContainerID: id, IP: a.String()}
	return a.String()
}

func TestAllocateRoundRobin(t *testing.T) {
	n := testNet("10.89.0.0/29", "10.89.0.1", "") // hosts .1-.6, .1 the gateway
	var got []string
	for i := range 5 {
		got = append(got, take(t, n, fmt.Sprint(i)))
	}
	if want := "10.89.0.2 10.89.0.3 10.89.0.4 10.89.0.5 10.89.0.6"; strings.Join(got, " ") != want {
		t.Fatalf("got %v want %s", got, want)
	}
	if _, err := allocate(n, netip.Addr{}); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("full pool: %v", err)
	}
	// A freed address is not handed out again while others are free.
	delete(n.Leases, "1") // 10.89.0.3
	delete(n.Leases, "3") // 10.89.0.5
	if a := take(t, n, "x"); a != "10.89.0.3" {
		t.Fatalf("wrapped to %s, want 10.89.0.3", a)
	}
	if a := take(t, n, "y"); a != "10.89.0.5" {
		t.Fatalf("next %s, want 10.89.0.5", a)
	}
}

func TestAllocateStaticAndRange(t *testing.T) {
	n := testNet("10.89.0.0/24", "10.89.0.1", "10.89.0.128/30")
	if a := take(t, n, "a"); a != "10.89.0.128" {
		t.Fatalf("range start %s", a)
	}
	for _, bad := range []string{"10.89.0.1", "10.89.0.0", "10.89.0.255", "10.90.0.5", "10.89.0.128"} {
		if _, err := allocate(n, netip.MustParseAddr(bad)); err == nil {
			t.Errorf("static %s accepted", bad)
		}
	}
	// A static address may lie outside the range, inside the subnet.
	if a, err := allocate(n, netip.MustParseAddr("10.89.0.7")); err != nil || a.String() != "10.89.0.7" {
		t.Fatalf("static: %v %v", a, err)
	}
}

func TestDropStale(t *testing.T) {
	n := testNet("10.89.0.0/24", "10.89.0.1", "")
	n.Leases["dead"] = &Lease{ContainerID: "dead", IP: "10.89.0.2", NetNS: "/proc/999999999/ns/net", NetNSIno: 1}
	n.Leases["self"] = &Lease{ContainerID: "self", IP: "10.89.0.3", NetNS: "/proc/self/ns/net"}
	dev, ino, err := nsID("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	n.Leases["self"].NetNSDev, n.Leases["self"].NetNSIno = dev, ino
	n.Leases["reused"] = &Lease{ContainerID: "reused", IP: "10.89.0.4", NetNS: "/proc/self/ns/net", NetNSDev: dev, NetNSIno: ino + 1}
	gone := dropStale(n, leaseAlive)
	if len(gone) != 2 || gone[0].ContainerID != "dead" || gone[1].ContainerID != "reused" {
		t.Fatalf("gone = %+v", gone)
	}
	if len(n.Leases) != 1 || n.Leases["self"] == nil {
		t.Fatalf("left %v", n.Leases)
	}
}

// newTestManager manages files only: its outer namespace does not exist,
// so nothing is created or removed in a real one.
func newTestManager(t *testing.T) *Manager {
	t.Helper()
	yes := true
	m, err := New(Options{Dir: t.TempDir(), Rootless: &yes, OuterNetNS: "/nonexistent/netns",
		PortAPI: "/nonexistent/api.sock", ResolvConf: "/dev/null"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCreateListRemove(t *testing.T) {
	m := newTestManager(t)
	nets, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 1 || nets[0].Name != DefaultNetwork || nets[0].Subnet != "10.88.0.0/16" || nets[0].Bridge != "nook0" {
		t.Fatalf("default network: %+v", nets)
	}
	if n, err := m.Get(DockerDefault); err != nil || n.Name != DefaultNetwork {
		t.Fatalf("bridge alias: %v %v", n, err)
	}
	a, err := m.Create(CreateOptions{Name: "a", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Create(CreateOptions{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Subnet == b.Subnet || !strings.HasPrefix(a.Subnet, "10.89.") || a.Gateway == "" || len(a.Bridge) > 15 {
		t.Fatalf("a=%+v b=%+v", a, b)
	}
	if _, err := m.Create(CreateOptions{Name: "a"}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate name: %v", err)
	}
	if n, err := m.Create(CreateOptions{Name: "a", IgnoreExisting: true}); err != nil || n.ID != a.ID {
		t.Fatalf("ignore existing: %v", err)
	}
	if _, err := m.Create(CreateOptions{Name: "c", Subnet: a.Subnet}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("overlapping subnet: %v", err)
	}
	for _, bad := range []CreateOptions{
		{Name: "-x"}, {Name: "host"}, {Name: "bridge"}, {Name: "x", Driver: "macvlan"},
		{Name: "x", Subnet: "10.200.0.1/24"}, {Name: "x", Subnet: "bogus"},
		{Name: "x", Subnet: "10.200.0.0/24", Gateway: "10.201.0.1"},
		{Name: "x", Subnet: "10.200.0.0/24", IPRange: "10.201.0.0/28"},
	} {
		if _, err := m.Create(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if n, err := m.Get(a.ID[:6]); err != nil || n.Name != "a" {
		t.Fatalf("ID prefix: %v", err)
	}
	if _, err := m.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	// The file is plain JSON, written whole.
	raw, err := os.ReadFile(filepath.Join(m.Dir(), "a.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Network
	if err := json.Unmarshal(raw, &back); err != nil || back.Labels["k"] != "v" {
		t.Fatalf("file: %v %s", err, raw)
	}
	// A lease whose namespace is gone does not keep a network busy.
	b.Leases["gone"] = &Lease{ContainerID: "gone", IP: "10.89.1.2", NetNS: "/proc/999999999/ns/net"}
	if err := m.locked(func() error { return m.save(b) }); err != nil {
		t.Fatal(err)
	}
	removed, err := m.Remove(t.Context(), "a", "b", "nook", "nope")
	if len(removed) != 2 || err == nil || !strings.Contains(err.Error(), "pre-defined") || !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove: %v %v", removed, err)
	}
	nets, _ = m.List()
	if len(nets) != 1 {
		t.Fatalf("left: %d networks", len(nets))
	}
}

func TestRemoveInUse(t *testing.T) {
	m := newTestManager(t)
	n, err := m.Create(CreateOptions{Name: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	dev, ino, _ := nsID("/proc/self/ns/net")
	n.Leases["c1"] = &Lease{ContainerID: "c1", Name: "web", IP: "10.89.0.2", NetNS: "/proc/self/ns/net", NetNSDev: dev, NetNSIno: ino}
	if err := m.locked(func() error { return m.save(n) }); err != nil {
		t.Fatal(err)
	}
	_, err = m.Remove(t.Context(), "busy")
	var iu *InUseError
	if !errors.As(err, &iu) || !errors.Is(err, ErrInUse) || iu.Containers[0] != "web" {
		t.Fatalf("in use: %v", err)
	}
	if removed, err := m.Prune(t.Context(), nil); err != nil || len(removed) != 0 {
		t.Fatalf("prune removed a busy network: %v %v", removed, err)
	}
}

// Networks created concurrently (as by parallel invocations) get
// distinct subnets and bridges.
func TestCreateConcurrent(t *testing.T) {
	m := newTestManager(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m2, err := New(Options{Dir: m.Dir(), Rootless: &m.rootless, OuterNetNS: m.outer, PortAPI: m.portAPI})
			if err == nil {
				_, err = m2.Create(CreateOptions{Name: fmt.Sprintf("n%d", i)})
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	nets, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	subnets, bridges := map[string]bool{}, map[string]bool{}
	for _, n := range nets {
		subnets[n.Subnet], bridges[n.Bridge] = true, true
	}
	if len(nets) != 17 || len(subnets) != 17 || len(bridges) != 17 {
		t.Fatalf("%d networks, %d subnets, %d bridges", len(nets), len(subnets), len(bridges))
	}
}

func TestNextFreeSubnet(t *testing.T) {
	taken := []takenPrefix{{p: netip.MustParsePrefix("10.89.0.0/16")}}
	p, err := nextFreeSubnet(taken)
	if err != nil || p.String() != "10.90.0.0/24" {
		t.Fatalf("got %v %v", p, err)
	}
	if _, err := nextFreeSubnet([]takenPrefix{{p: netip.MustParsePrefix("10.0.0.0/8")}}); err == nil {
		t.Fatal("exhausted pool not reported")
	}
}
