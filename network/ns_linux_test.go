package network

// Tests in real namespaces. As root each test makes an outer namespace of
// its own (the host is never touched). As an unprivileged user the test
// binary joins (or starts) the user's holder, like nook does, and uses the
// holder's namespace and port manager: build it with
// `go test -c -o network.test ./network` and run it as that user.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/rootless-containers/rootlesskit/v2/pkg/port"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nook-containers/nook/userns"
	_ "github.com/nook-containers/nook/userns/join" // a rootless run joins the holder, as nook does
)

func TestMain(m *testing.M) {
	if userns.HolderMain() {
		return // one of the holder's processes, started by Ensure below
	}
	if userns.Rootless() && !userns.Joined() {
		if err := userns.Ensure(os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "entering the user namespace:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if rootlessDir.dir != "" {
		os.RemoveAll(rootlessDir.dir)
	}
	os.Exit(code)
}

var rootlessDir struct {
	once sync.Once
	dir  string
}

// testEnv is a Manager over real namespaces, plus the namespace that
// plays the host for published ports: rootless, the caller's own (the
// holder's parent listens there); as root, the private outer namespace.
type testEnv struct {
	m        *Manager
	outer    string // outer namespace path
	hostNS   string // "" = this process's namespace
	rootless bool
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\nnameserver 10.255.255.53\nsearch example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if userns.Rootless() {
		if !userns.Joined() {
			t.Fatal("rootless, but not inside the holder's namespaces")
		}
		// One directory for every test of this run: they share the
		// holder's namespace, so they must share leases too.
		rootlessDir.once.Do(func() {
			d, err := os.MkdirTemp("", "nook-network-test-")
			if err != nil {
				panic(err)
			}
			rootlessDir.dir = d
		})
		yes := true
		m, err := New(Options{Dir: rootlessDir.dir, Rootless: &yes, ResolvConf: resolv, Warnings: testWriter{t}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(userns.NetNSPath()); err != nil {
			t.Fatalf("the holder's network namespace: %v", err)
		}
		return &testEnv{m: m, outer: userns.NetNSPath(), rootless: true}
	}
	outer := spawnNS(t)
	no := false
	m, err := New(Options{Dir: t.TempDir(), OuterNetNS: outer, Rootless: &no, ResolvConf: resolv, Warnings: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	inNSPath(t, outer, func() error { return loopbackUpHere() })
	return &testEnv{m: m, outer: outer, hostNS: outer}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func loopbackUpHere() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}

// spawnNS starts a process in a new network namespace, as the runner's
// container init is, and returns its namespace path.
func spawnNS(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("sleep", "3600")
	// Pdeathsig as the runner uses it: it fires if the forking OS thread
	// ends, which namespace switching must never cause.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a process in a new network namespace: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
}

func killNS(t *testing.T, path string) {
	t.Helper()
	pid, err := strconv.Atoi(strings.Split(path, "/")[2])
	if err != nil {
		t.Fatal(err)
	}
	p, _ := os.FindProcess(pid)
	p.Kill()
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(path); err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s still exists", path)
}

func inNSPath(t *testing.T, path string, fn func() error) {
	t.Helper()
	if err := inNSPathErr(path, fn); err != nil {
		t.Fatal(err)
	}
}

func inNSPathErr(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer h.Close()
	return inNS(h, fn)
}

func randName(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func randID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serveTCP echoes a greeting line to every connection on addr inside ns.
func serveTCP(t *testing.T, ns, addr, greeting string) net.Listener {
	t.Helper()
	var ln net.Listener
	inNSPath(t, ns, func() (err error) { ln, err = net.Listen("tcp", addr); return })
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", greeting, c.RemoteAddr())
			c.Close()
		}
	}()
	return ln
}

// dialLine connects from ns to addr and reads one line.
func dialLine(ns, addr string) (string, error) {
	var c net.Conn
	err := inNSPathErr(ns, func() (err error) { c, err = net.DialTimeout("tcp", addr, 3*time.Second); return })
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func links(t *testing.T, ns string) []string {
	t.Helper()
	var names []string
	inNSPath(t, ns, func() error {
		ls, err := netlink.LinkList()
		for _, l := range ls {
			names = append(names, l.Attrs().Name)
		}
		return err
	})
	return names
}

// hasLinkRaw looks from another process, not through the namespace
// thread (which, parked, must not pin anything either).
func hasLinkRaw(ns, name string) bool {
	return exec.Command("nsenter", "--net="+ns, "ip", "link", "show", name).Run() == nil
}

func hasLink(t *testing.T, ns, name string) bool {
	for _, l := range links(t, ns) {
		if l == name {
			return true
		}
	}
	return false
}

func (e *testEnv) network(t *testing.T, prefix string) *Network {
	t.Helper()
	n, err := e.m.Create(CreateOptions{Name: randName(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.m.Remove(context.Background(), n.Name) })
	return n
}

func (e *testEnv) leases(t *testing.T, name string) map[string]*Lease {
	t.Helper()
	n, err := e.m.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return n.Leases
}

func TestTwoContainersTalk(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	n := e.network(t, "pair-")
	a, b := spawnNS(t), spawnNS(t)
	dir := t.TempDir()
	idA, idB := randID(), randID()
	ra, err := e.m.Attach(ctx, AttachOptions{ContainerID: idA, Name: "alpha", NetNSPath: a, Networks: []string{n.Name},
		Aliases: []string{"web"}, HostsPath: filepath.Join(dir, "a.hosts"), ResolvConfPath: filepath.Join(dir, "a.resolv"),
		HostnamePath: filepath.Join(dir, "a.hostname"), AddHosts: []string{"gw:host-gateway"}})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := e.m.Attach(ctx, AttachOptions{ContainerID: idB, Name: "beta", NetNSPath: b, Networks: []string{n.Name},
		Aliases: []string{"db"}, HostsPath: filepath.Join(dir, "b.hosts")})
	if err != nil {
		t.Fatal(err)
	}
	if ra.IP() == rb.IP() || ra.Gateway() != n.Gateway || ra.Endpoints[0].Interface != "eth0" {
		t.Fatalf("a=%+v b=%+v", ra.Endpoints, rb.Endpoints)
	}
	// Files: each lists the other by name and alias, a's was rewritten
	// when b arrived.
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if h := read("a.hosts"); !strings.Contains(h, rb.IP()+"\tbeta db\n") || !strings.Contains(h, ra.IP()+"\t"+idA[:12]+" alpha\n") ||
		!strings.Contains(h, "\tgw\n") {
		t.Fatalf("a's hosts:\n%s", h)
	}
	if h := read("b.hosts"); !strings.Contains(h, ra.IP()+"\talpha web\n") {
		t.Fatalf("b's hosts:\n%s", h)
	}
	wantNS := "nameserver 10.255.255.53\n"
	if e.rootless {
		wantNS = "nameserver 10.0.2.3\n"
	}
	if r := read("a.resolv"); r != wantNS+"search example.test\n" {
		t.Fatalf("resolv.conf:\n%s", r)
	}
	if h := read("a.hostname"); h != idA[:12]+"\n" {
		t.Fatalf("hostname %q", h)
	}
	// The container's side: address, MAC, default route.
	inNSPath(t, a, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if l.Attrs().HardwareAddr.String() != ra.MAC() || l.Attrs().MTU != n.MTU {
			return fmt.Errorf("eth0: mac %s mtu %d", l.Attrs().HardwareAddr, l.Attrs().MTU)
		}
		rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range rs {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.String() == n.Gateway {
				return err
			}
		}
		return fmt.Errorf("no default route via %s: %v", n.Gateway, rs)
	})
	// ping and TCP between the two.
	if bb, err := exec.LookPath("busybox"); err == nil {
		out, err := exec.Command("nsenter", "--net="+a, bb, "ping", "-c", "1", "-W", "3", rb.IP()).CombinedOutput()
		if err != nil {
			t.Fatalf("ping from a to b: %v\n%s", err, out)
		}
	} else {
		t.Fatal("busybox not found: install busybox-static")
	}
	serveTCP(t, b, ":7000", "hello-from-b")
	line, err := dialLine(a, net.JoinHostPort(rb.IP(), "7000"))
	if err != nil || !strings.HasPrefix(line, "hello-from-b "+ra.IP()+":") {
		t.Fatalf("a -> b: %q %v", line, err)
	}
	// b leaves: its link and lease go, a's hosts file forgets it.
	vethB := e.leases(t, n.Name)[idB].HostVeth
	if !hasLink(t, e.outer, vethB) {
		t.Fatalf("%s not in the outer namespace", vethB)
	}
	if err := e.m.Detach(ctx, idB); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Detach(ctx, idB); err != nil {
		t.Fatalf("second detach: %v", err)
	}
	if hasLink(t, e.outer, vethB) {
		t.Fatalf("%s left behind", vethB)
	}
	if h := read("a.hosts"); strings.Contains(h, "beta") {
		t.Fatalf("a's hosts still lists beta:\n%s", h)
	}
	if err := e.m.Detach(ctx, idA); err != nil {
		t.Fatal(err)
	}
	if l := e.leases(t, n.Name); len(l) != 0 {
		t.Fatalf("leases left: %v", l)
	}
	if _, err := e.m.Remove(ctx, n.Name); err != nil {
		t.Fatal(err)
	}
	if hasLink(t, e.outer, n.Bridge) {
		t.Fatalf("bridge %s left behind", n.Bridge)
	}
	if !e.rootless {
		assertNoTag(t, e.outer, netTag(n))
	}
}

func assertNoTag(t *testing.T, ns string, tag string) {
	t.Helper()
	h, err := netns.GetFromPath(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftConn(h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	for _, ch := range []*nftables.Chain{chainPost, chainPre, chainOut, chainFwd} {
		rules, err := c.GetRules(tbl, ch)
		if err != nil && !isNotExist(err) {
			t.Fatal(err)
		}
		for _, r := range rules {
			if ruleTag(r) == tag {
				t.Fatalf("rule %s left in chain %s", tag, ch.Name)
			}
		}
	}
}

// hostGet fetches url from the namespace playing the host.
func (e *testEnv) hostGet(url string) (string, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = inNSPathErr(e.hostNS, func() error {
			c, err = (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}, DisableKeepAlives: true}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func (e *testEnv) hostFreePort(t *testing.T) int {
	t.Helper()
	var port int
	inNSPath(t, e.hostNS, func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		return l.Close()
	})
	return port
}

func serveHTTP(t *testing.T, ns, addr, body string) {
	t.Helper()
	var ln net.Listener
	inNSPath(t, ns, func() (err error) { ln, err = net.Listen("tcp", addr); return })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func TestPublish(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	n := e.network(t, "pub-")
	c := spawnNS(t)
	serveHTTP(t, c, ":8080", "hello from the container")
	hp := e.hostFreePort(t)
	ports, err := ParsePublish([]string{fmt.Sprintf("127.0.0.1:%d:8080", hp), "8080"})
	if err != nil {
		t.Fatal(err)
	}
	id := randID()
	res, err := e.m.Attach(ctx, AttachOptions{ContainerID: id, Name: "web", NetNSPath: c, Networks: []string{n.Name}, Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ports) != 2 || res.Ports[0].HostPort != uint16(hp) || res.Ports[1].HostPort == 0 {
		t.Fatalf("ports: %+v", res.Ports)
	}
	if got, _ := e.m.Ports(id); len(got) != 2 {
		t.Fatalf("Ports(): %+v", got)
	}
	for _, p := range res.Ports {
		body, err := e.hostGet(fmt.Sprintf("http://127.0.0.1:%d/", p.HostPort))
		if err != nil || body != "hello from the container" {
			t.Fatalf("GET through %s: %q %v", p, body, err)
		}
	}
	// The same port again, for another container: refused by name,
	// nothing left of the attempt.
	c2 := spawnNS(t)
	id2 := randID()
	_, err = e.m.Attach(ctx, AttachOptions{ContainerID: id2, NetNSPath: c2, Networks: []string{n.Name}, Ports: ports[:1]})
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(hp)+"/tcp") {
		t.Fatalf("second publish of %d: %v", hp, err)
	}
	if l := e.leases(t, n.Name); len(l) != 1 {
		t.Fatalf("leases after the refused attach: %d", len(l))
	}
	if hasLink(t, c2, "eth0") || hasLink(t, e.outer, vethName(id2, n.ID)) {
		t.Fatal("links left by the refused attach")
	}
	if err := e.m.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Ports {
		if _, err := e.hostGet(fmt.Sprintf("http://127.0.0.1:%d/", p.HostPort)); err == nil {
			t.Fatalf("port %d still answers after detach", p.HostPort)
		}
	}
	e.assertNoPorts(t, res.IP(), id)
}

// assertNoPorts checks that nothing is published to ip any more.
func (e *testEnv) assertNoPorts(t *testing.T, ip, cid string) {
	t.Helper()
	if e.rootless {
		pm, err := e.m.portManager()
		if err != nil {
			t.Fatal(err)
		}
		sts, err := pm.ListPorts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			if st.Spec.ChildIP == ip {
				t.Fatalf("port left in the holder: %+v", st.Spec)
			}
		}
		return
	}
	assertNoTag(t, e.outer, ctrTag(cid))
}

func TestPortInUse(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	n := e.network(t, "busy-")
	var ln net.Listener
	inNSPath(t, e.hostNS, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return })
	defer ln.Close()
	hp := ln.Addr().(*net.TCPAddr).Port
	c := spawnNS(t)
	id := randID()
	ports, _ := ParsePublish([]string{fmt.Sprintf("127.0.0.1:%d:80", hp)})
	_, err := e.m.Attach(ctx, AttachOptions{ContainerID: id, NetNSPath: c, Networks: []string{n.Name}, Ports: ports})
	want := fmt.Sprintf("host port 127.0.0.1:%d/tcp is already in use", hp)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
	if l := e.leases(t, n.Name); len(l) != 0 {
		t.Fatalf("lease left: %v", l)
	}
	if hasLink(t, c, "eth0") || hasLink(t, e.outer, vethName(id, n.ID)) {
		t.Fatal("links left behind")
	}
	// Rootless, also the holder's own refusal (a port the test binding
	// cannot see, because the holder already has it) leaves nothing.
	if e.rootless {
		pm, _ := e.m.portManager()
		free := e.hostFreePort(t)
		st, err := pm.AddPort(ctx, portSpec("127.0.0.1", free, "10.99.99.99", 80))
		if err != nil {
			t.Fatal(err)
		}
		defer pm.RemovePort(ctx, st.ID)
		ports, _ := ParsePublish([]string{fmt.Sprintf("127.0.0.1:%d:80", free)})
		_, err = e.m.Attach(ctx, AttachOptions{ContainerID: id, NetNSPath: c, Networks: []string{n.Name}, Ports: ports})
		if err == nil || !strings.Contains(err.Error(), strconv.Itoa(free)) {
			t.Fatalf("port held by the holder: %v", err)
		}
		if l := e.leases(t, n.Name); len(l) != 0 || hasLink(t, c, "eth0") {
			t.Fatalf("left behind after the holder's refusal: %v", l)
		}
	}
}

func TestOutbound(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	n := e.network(t, "out-")
	c := spawnNS(t)
	id := randID()
	target, seen := e.outside(t)
	if _, err := e.m.Attach(ctx, AttachOptions{ContainerID: id, NetNSPath: c, Networks: []string{n.Name}}); err != nil {
		t.Fatal(err)
	}
	defer e.m.Detach(ctx, id)
	line, err := dialLine(c, target)
	if err != nil || !strings.HasPrefix(line, "hello-from-") || !strings.Contains(line, " "+seen) {
		t.Fatalf("outbound to %s: %q %v", target, line, err)
	}
	if !e.rootless {
		return
	}
	// DNS through slirp4netns's resolver, as the container's resolv.conf
	// says: any answer proves the path.
	var addrs []string
	err = inNSPathErr(c, func() error {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "udp", SlirpDNS+":53")
		}}
		ctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		defer cancel()
		var err error
		addrs, err = r.LookupHost(ctx, "deb.debian.org")
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil // an answer, even a negative one, came back
		}
		return err
	})
	if err != nil {
		t.Fatalf("DNS through %s: %v", SlirpDNS, err)
	}
	t.Logf("deb.debian.org -> %v", addrs)
}

// outside starts a listener beyond the outer namespace and returns its
// address and the source address a masqueraded connection arrives from.
// Rootless, slirp4netns connects from the host's namespace, so a listener
// on the host's own (non-loopback) address is outside. As root, an
// "upstream" namespace behind the private outer one plays the internet.
func (e *testEnv) outside(t *testing.T) (target, seen string) {
	t.Helper()
	if e.rootless {
		hostIP := firstHostIPv4()
		if hostIP == "" {
			t.Fatal("no non-loopback IPv4 address on this host to test outbound connections against")
		}
		ln := serveTCP(t, "", net.JoinHostPort(hostIP, "0"), "hello-from-host")
		return ln.Addr().String(), ""
	}
	up := spawnNS(t)
	inNSPath(t, e.outer, func() error {
		upNS, err := netns.GetFromPath(up)
		if err != nil {
			return err
		}
		defer upNS.Close()
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "upl", Flags: net.FlagUp}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(upNS))}
		if err := netlink.LinkAdd(v); err != nil {
			return err
		}
		a, _ := netlink.ParseAddr("192.168.250.1/30")
		if err := netlink.AddrAdd(v, a); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: v.Attrs().Index, Gw: net.ParseIP("192.168.250.2")})
	})
	inNSPath(t, up, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		a, _ := netlink.ParseAddr("192.168.250.2/30")
		if err := netlink.AddrAdd(l, a); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	serveTCP(t, up, "192.168.250.2:7001", "hello-from-upstream")
	return "192.168.250.2:7001", "192.168.250.1:"
}

// waitNoLink waits for the kernel to remove the pair of a dead namespace;
// it never does if something of nook's keeps that namespace alive.
func waitNoLink(t *testing.T, ns, veth string) {
	t.Helper()
	for i := 0; hasLinkRaw(ns, veth); i++ {
		if i == 200 {
			t.Fatalf("%s still there: something pins the dead container's namespace", veth)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After Attach, nothing of nook's (the namespace thread above all) holds
// the container's namespace: when the container dies, its pair goes.
func TestNothingPinsTheNamespace(t *testing.T) {
	e := newEnv(t)
	n := e.network(t, "pin-")
	c := spawnNS(t)
	id := randID()
	if _, err := e.m.Attach(t.Context(), AttachOptions{ContainerID: id, NetNSPath: c, Networks: []string{n.Name}}); err != nil {
		t.Fatal(err)
	}
	defer e.m.Detach(t.Context(), id)
	killNS(t, c)
	waitNoLink(t, e.outer, vethName(id, n.ID))
}

func TestStaleLeasesAndReconcile(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	n := e.network(t, "stale-")
	c := spawnNS(t)
	id := randID()
	ports, _ := ParsePublish([]string{"9000"})
	res, err := e.m.Attach(ctx, AttachOptions{ContainerID: id, NetNSPath: c, Networks: []string{n.Name}, Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	// The container dies without a Detach (nook killed): the kernel
	// removes its veth pair, the lease and the published port stay.
	killNS(t, c)
	if l := e.leases(t, n.Name); l[id] == nil {
		t.Fatal("lease vanished by itself")
	}
	waitNoLink(t, e.outer, vethName(id, n.ID))
	// The next attach to the network frees them.
	c2 := spawnNS(t)
	id2 := randID()
	if _, err := e.m.Attach(ctx, AttachOptions{ContainerID: id2, NetNSPath: c2, Networks: []string{n.Name}}); err != nil {
		t.Fatal(err)
	}
	if l := e.leases(t, n.Name); l[id] != nil || l[id2] == nil {
		t.Fatalf("leases: %v", l)
	}
	e.assertNoPorts(t, res.IP(), id)
	if err := e.m.Detach(ctx, id2); err != nil {
		t.Fatal(err)
	}
	// Reconcile: a pinned namespace of a container that is not running
	// any more is deleted with its lease; a live one stays.
	pinned, err := NewNetNS(randName("nook-test-"))
	if err != nil {
		t.Fatal(err)
	}
	defer DeleteNetNS(pinned)
	id3, id4 := randID(), randID()
	c4 := spawnNS(t)
	if _, err := e.m.Attach(ctx, AttachOptions{ContainerID: id3, NetNSPath: pinned, Networks: []string{n.Name}, Ports: ports}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Attach(ctx, AttachOptions{ContainerID: id4, NetNSPath: c4, Networks: []string{n.Name}}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Reconcile(ctx, func(cid string) bool { return cid == id4 }); err != nil {
		t.Fatal(err)
	}
	l := e.leases(t, n.Name)
	if l[id3] != nil || l[id4] == nil {
		t.Fatalf("after reconcile: %v", l)
	}
	if _, err := os.Stat(pinned); !os.IsNotExist(err) {
		t.Fatalf("pinned namespace not deleted: %v", err)
	}
	// The kernel removes the pair of a dead namespace in the background.
	for i := 0; hasLink(t, e.outer, vethName(id3, n.ID)); i++ {
		if i == 100 {
			t.Fatal("veth of the reconciled container left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.m.Detach(ctx, id4)
}

func TestNoneAndHost(t *testing.T) {
	e := newEnv(t)
	c := spawnNS(t)
	res, err := e.m.Attach(t.Context(), AttachOptions{ContainerID: randID(), NetNSPath: c, Networks: []string{ModeNone}, Hostname: "box"})
	if err != nil {
		t.Fatal(err)
	}
	inNSPath(t, c, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("loopback not up: %v", err)
		}
		return nil
	})
	if names := links(t, c); len(names) != 1 {
		t.Fatalf("links in a none container: %v", names)
	}
	if string(res.Hostname) != "box\n" || !strings.HasPrefix(string(res.Hosts), "127.0.0.1\tlocalhost\n") {
		t.Fatalf("files: %q %q", res.Hostname, res.Hosts)
	}
	res, err = e.m.Attach(t.Context(), AttachOptions{ContainerID: randID(), Networks: []string{ModeHost}, AddHosts: []string{"x:10.1.1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.ReadFile("/etc/hosts")
	hn, _ := os.Hostname()
	if !strings.HasPrefix(string(res.Hosts), string(host)) || !strings.HasSuffix(string(res.Hosts), "10.1.1.1\tx\n") || string(res.Hostname) != hn+"\n" {
		t.Fatalf("host mode files: %q %q", res.Hosts, res.Hostname)
	}
	if _, err := e.m.Attach(t.Context(), AttachOptions{ContainerID: randID(), Networks: []string{ModeHost, "nook"}}); err == nil {
		t.Fatal("host combined with another network accepted")
	}
}

func TestConnectDisconnect(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	n1, n2 := e.network(t, "c1-"), e.network(t, "c2-")
	c := spawnNS(t)
	id := randID()
	dir := t.TempDir()
	if _, err := e.m.Attach(ctx, AttachOptions{ContainerID: id, Name: "multi", NetNSPath: c, Networks: []string{n1.Name}, HostsPath: filepath.Join(dir, "hosts")}); err != nil {
		t.Fatal(err)
	}
	peer := spawnNS(t)
	pid := randID()
	if _, err := e.m.Attach(ctx, AttachOptions{ContainerID: pid, Name: "peer2", NetNSPath: peer, Networks: []string{n2.Name}}); err != nil {
		t.Fatal(err)
	}
	defer e.m.Detach(ctx, pid)
	res, err := e.m.Connect(ctx, AttachOptions{ContainerID: id, NetNSPath: c, Networks: []string{n2.Name}, Aliases: []string{"m2"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Endpoints[0].Interface != "eth1" || !hasLink(t, c, "eth1") {
		t.Fatalf("connect: %+v", res.Endpoints)
	}
	if h, _ := os.ReadFile(filepath.Join(dir, "hosts")); !strings.Contains(string(h), "\tpeer2\n") {
		t.Fatalf("hosts after connect:\n%s", h)
	}
	if _, err := e.m.Connect(ctx, AttachOptions{ContainerID: id, NetNSPath: c, Networks: []string{n2.Name}}); err == nil || !strings.Contains(err.Error(), "already connected") {
		t.Fatalf("second connect: %v", err)
	}
	if err := e.m.Disconnect(ctx, id, n2.Name); err != nil {
		t.Fatal(err)
	}
	if hasLink(t, c, "eth1") || !hasLink(t, c, "eth0") {
		t.Fatalf("links after disconnect: %v", links(t, c))
	}
	if eps, _ := e.m.Endpoints(id); len(eps) != 1 || eps[0].Network != n1.Name {
		t.Fatalf("endpoints: %+v", eps)
	}
	if err := e.m.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// Containers attached concurrently (several invocations at once) get
// distinct addresses and all leave cleanly.
func TestConcurrentAttach(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	n := e.network(t, "conc-")
	const k = 12
	nss := make([]string, k)
	ids := make([]string, k)
	for i := range k {
		nss[i], ids[i] = spawnNS(t), randID()
	}
	var wg sync.WaitGroup
	ips := make([]string, k)
	errs := make([]error, k)
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := New(Options{Dir: e.m.Dir(), OuterNetNS: e.m.outer, Rootless: &e.rootless, ResolvConf: e.m.resolvConf})
			if err != nil {
				errs[i] = err
				return
			}
			res, err := m.Attach(ctx, AttachOptions{ContainerID: ids[i], NetNSPath: nss[i], Networks: []string{n.Name}})
			if err == nil {
				ips[i] = res.IP()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range k {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[ips[i]] {
			t.Fatalf("address %s given twice", ips[i])
		}
		seen[ips[i]] = true
	}
	for i := range k {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = e.m.Detach(ctx, ids[i]) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if l := e.leases(t, n.Name); len(l) != 0 {
		t.Fatalf("leases left: %d", len(l))
	}
	for _, name := range links(t, e.outer) {
		for _, id := range ids {
			if name == vethName(id, n.ID) {
				t.Fatalf("%s left", name)
			}
		}
	}
}

func portSpec(parentIP string, parentPort int, childIP string, childPort int) port.Spec {
	return port.Spec{Proto: "tcp", ParentIP: parentIP, ParentPort: parentPort, ChildIP: childIP, ChildPort: childPort}
}

// BenchmarkAttachDetach is the network's share of `nook run --rm`.
func BenchmarkAttachDetach(b *testing.B) {
	e := newEnvB(b)
	ctx := context.Background()
	n, err := e.m.Create(CreateOptions{Name: randName("bench-")})
	if err != nil {
		b.Fatal(err)
	}
	defer e.m.Remove(ctx, n.Name)
	dir := b.TempDir()
	for b.Loop() {
		// As in `run --rm`: the container has exited when it is detached.
		b.StopTimer()
		cmd := exec.Command("sleep", "3600")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		ns := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
		b.StartTimer()
		id := randID()
		if _, err := e.m.Attach(ctx, AttachOptions{ContainerID: id, NetNSPath: ns, Networks: []string{n.Name},
			HostsPath: dir + "/hosts", ResolvConfPath: dir + "/resolv.conf", HostnamePath: dir + "/hostname"}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cmd.Process.Kill()
		cmd.Wait()
		b.StartTimer()
		if err := e.m.Detach(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

func newEnvB(b *testing.B) *testEnv {
	if userns.Rootless() {
		yes := true
		m, err := New(Options{Dir: b.TempDir(), Rootless: &yes})
		if err != nil {
			b.Fatal(err)
		}
		return &testEnv{m: m, outer: userns.NetNSPath(), rootless: true}
	}
	cmd := exec.Command("sleep", "3600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	outer := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	no := false
	m, err := New(Options{Dir: b.TempDir(), OuterNetNS: outer, Rootless: &no})
	if err != nil {
		b.Fatal(err)
	}
	if err := inNSPathErr(outer, loopbackUpHere); err != nil {
		b.Fatal(err)
	}
	return &testEnv{m: m, outer: outer, hostNS: outer}
}

// BenchmarkPublishedThroughput serves a 100 MiB file with busybox httpd in
// a container namespace and fetches it through a published port from the
// host's 127.0.0.1 (the figure `make bench` compares with podman's -p).
func BenchmarkPublishedThroughput(b *testing.B) {
	e := newEnvB(b)
	ctx := context.Background()
	n, err := e.m.Create(CreateOptions{Name: randName("tput-")})
	if err != nil {
		b.Fatal(err)
	}
	defer e.m.Remove(ctx, n.Name)
	www := b.TempDir()
	const size = 100 << 20
	f, err := os.Create(filepath.Join(www, "big"))
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	os.Chmod(www, 0o755)
	bb, err := exec.LookPath("busybox")
	if err != nil {
		b.Fatal("busybox not found: install busybox-static")
	}
	cmd := exec.Command(bb, "httpd", "-f", "-p", "8080", "-h", www)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	id := randID()
	res, err := e.m.Attach(ctx, AttachOptions{ContainerID: id, NetNSPath: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid),
		Networks: []string{n.Name}, Ports: []PortMapping{{HostIP: "127.0.0.1", ContainerPort: 8080, Protocol: "tcp"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer e.m.Detach(ctx, id)
	url := fmt.Sprintf("http://127.0.0.1:%d/big", res.Ports[0].HostPort)
	get := func() (int64, error) {
		var c net.Conn
		err := inNSPathErr(e.hostNS, func() (err error) {
			c, err = net.Dial("tcp", strings.TrimPrefix(url[:strings.LastIndex(url, "/")], "http://"))
			return
		})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /big HTTP/1.0\r\nHost: x\r\n\r\n")
		return io.Copy(io.Discard, c)
	}
	for i := 0; i < 50; i++ { // wait for httpd
		if _, err = get(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		got, err := get()
		if err != nil || got < size {
			b.Fatalf("got %d bytes: %v", got, err)
		}
	}
}

func TestPublishUDP(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	n := e.network(t, "udp-")
	c := spawnNS(t)
	var pc net.PacketConn
	inNSPath(t, c, func() (err error) { pc, err = net.ListenPacket("udp", ":5353"); return })
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo "), buf[:k]...), from)
		}
	}()
	ports, _ := ParsePublish([]string{"127.0.0.1::5353/udp"})
	id := randID()
	res, err := e.m.Attach(ctx, AttachOptions{ContainerID: id, NetNSPath: c, Networks: []string{n.Name}, Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	defer e.m.Detach(ctx, id)
	var got string
	inNSPath(t, e.hostNS, func() error {
		conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", res.Ports[0].HostPort))
		if err != nil {
			return err
		}
		defer conn.Close()
		buf := make([]byte, 100)
		for i := 0; i < 20 && got == ""; i++ { // UDP: the first datagram may race the forwarder
			conn.Write([]byte("ping"))
			conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if k, err := conn.Read(buf); err == nil {
				got = string(buf[:k])
			}
		}
		return nil
	})
	if got != "echo ping" {
		t.Fatalf("UDP through %s: got %q", res.Ports[0], got)
	}
}

// An --internal network reaches its peers but nothing outside.
func TestInternalNetwork(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	n, err := e.m.Create(CreateOptions{Name: randName("int-"), Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.m.Remove(ctx, n.Name)
	a, b := spawnNS(t), spawnNS(t)
	ida, idb := randID(), randID()
	if _, err := e.m.Attach(ctx, AttachOptions{ContainerID: ida, NetNSPath: a, Networks: []string{n.Name}}); err != nil {
		t.Fatal(err)
	}
	defer e.m.Detach(ctx, ida)
	rb, err := e.m.Attach(ctx, AttachOptions{ContainerID: idb, NetNSPath: b, Networks: []string{n.Name}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.m.Detach(ctx, idb)
	serveTCP(t, b, ":7002", "peer")
	if line, err := dialLine(a, net.JoinHostPort(rb.IP(), "7002")); err != nil || !strings.HasPrefix(line, "peer ") {
		t.Fatalf("peer on an internal network: %q %v", line, err)
	}
	target, _ := e.outside(t)
	var c net.Conn
	err = inNSPathErr(a, func() (err error) { c, err = net.DialTimeout("tcp", target, time.Second); return })
	if err == nil {
		c.Close()
		t.Fatalf("a container on an internal network reached %s", target)
	}
}

func TestCreateNetNS(t *testing.T) {
	e := newEnv(t)
	n := e.network(t, "cns-")
	f, err := CreateNetNS()
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
	self, _ := os.Readlink("/proc/self/ns/net")
	if got, _ := os.Readlink(path); got == self || !strings.HasPrefix(got, "net:[") {
		t.Fatalf("new namespace %q, this process's %q", got, self)
	}
	id := randID()
	if _, err := e.m.Attach(t.Context(), AttachOptions{ContainerID: id, NetNSPath: path, Networks: []string{n.Name}}); err != nil {
		t.Fatal(err)
	}
	if !hasLinkRaw(path, "eth0") {
		t.Fatal("no eth0 in the created namespace")
	}
	// Closing the handle ends the namespace: the pair goes by itself,
	// and Detach then only frees the lease.
	f.Close()
	waitNoLink(t, e.outer, vethName(id, n.ID))
	if err := e.m.Detach(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}
