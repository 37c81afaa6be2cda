package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// AttachOptions describe a container's networking. See the package
// documentation for how the runner calls Attach and Detach.
type AttachOptions struct {
	// ContainerID keys the container's leases (required).
	ContainerID string
	// Name is the container's name (no leading "/"): peers on user-defined
	// networks reach it by this name.
	Name string
	// NetNSPath is the container's network namespace: /proc/PID/ns/net of
	// its init, or a file from NewNetNS. Unused for the host mode.
	NetNSPath string
	// Networks are network names or IDs; empty means the default network.
	// ModeNone ("none") and ModeHost ("host") stand alone.
	Networks []string
	// Aliases are extra names on every user-defined network
	// (--network-alias); NetworkAliases adds names per network (compose).
	Aliases        []string
	NetworkAliases map[string][]string
	// StaticIPs asks for fixed addresses, by network (--ip).
	StaticIPs map[string]string
	// Hostname defaults to the first 12 characters of ContainerID.
	Hostname   string
	Domainname string
	// Ports to publish, on the first network's address (-p, -P).
	Ports []PortMapping
	// DNS, DNSSearch, DNSOptions replace the host's (--dns,
	// --dns-search, --dns-option).
	DNS        []string
	DNSSearch  []string
	DNSOptions []string
	// AddHosts are --add-host values ("name:ip", "name:host-gateway").
	AddHosts []string
	// HostsPath, ResolvConfPath and HostnamePath, when set, receive the
	// generated files (written in place: they may already be bind-mounted).
	// With HostsPath set, nook also rewrites the file as peers come and go.
	HostsPath      string
	ResolvConfPath string
	HostnamePath   string
}

// Endpoint is a container's address on one network.
type Endpoint struct {
	Network   string   `json:"network"`
	NetworkID string   `json:"network_id"`
	Interface string   `json:"interface"`
	IP        string   `json:"ip"`
	PrefixLen int      `json:"prefix_len"`
	Gateway   string   `json:"gateway"`
	MAC       string   `json:"mac"`
	Aliases   []string `json:"aliases,omitempty"`
}

// Result is what Attach did: the endpoints (first = the default route),
// the published ports with the host ports actually bound, and the contents
// of /etc/hosts, /etc/resolv.conf and /etc/hostname for the container.
type Result struct {
	Mode       string        `json:"mode"` // "bridge", "none" or "host"
	Endpoints  []Endpoint    `json:"endpoints,omitempty"`
	Ports      []PortMapping `json:"ports,omitempty"`
	Hosts      []byte        `json:"-"`
	ResolvConf []byte        `json:"-"`
	Hostname   []byte        `json:"-"`
}

// IP is the address on the first network, or "".
func (r *Result) IP() string {
	if len(r.Endpoints) == 0 {
		return ""
	}
	return r.Endpoints[0].IP
}

// Gateway is the first network's gateway, or "".
func (r *Result) Gateway() string {
	if len(r.Endpoints) == 0 {
		return ""
	}
	return r.Endpoints[0].Gateway
}

// MAC is the first network's MAC address, or "".
func (r *Result) MAC() string {
	if len(r.Endpoints) == 0 {
		return ""
	}
	return r.Endpoints[0].MAC
}

// Mode classifies a --network list: "none", "host", "container" (another
// container's namespace, which the runner handles) or "bridge".
func Mode(networks []string) (string, error) {
	for _, n := range networks {
		special := n == ModeNone || n == ModeHost || strings.HasPrefix(n, "container:")
		if special && len(networks) > 1 {
			return "", fmt.Errorf("network %q cannot be combined with other networks", n)
		}
		if special {
			if strings.HasPrefix(n, "container:") {
				return "container", nil
			}
			return n, nil
		}
	}
	return "bridge", nil
}

// attachment is one network being joined.
type attachment struct {
	net   *Network
	lease *Lease
	first bool // carries the default route
}

// Attach connects a container's network namespace to its networks (or
// just brings up its loopback for "none"), publishes its ports and returns
// its /etc files. On error nothing is left behind: no link, lease, rule or
// published port. Attaching a network the container is already on is an
// error; attaching more networks later (network connect) adds interfaces.
func (m *Manager) Attach(ctx context.Context, o AttachOptions) (*Result, error) {
	if o.ContainerID == "" {
		return nil, errors.New("attach: no container ID")
	}
	mode, err := Mode(o.Networks)
	if err != nil {
		return nil, err
	}
	if err := validateFiles(o); err != nil {
		return nil, err
	}
	if mode == ModeHost {
		return m.hostMode(o)
	}
	if o.Hostname == "" {
		o.Hostname = o.ContainerID[:min(12, len(o.ContainerID))]
	}
	switch mode {
	case "container":
		return nil, errors.New("attach: --network container:ID shares that container's namespace; the runner joins it and copies its files")
	case ModeNone:
		return m.noneMode(o)
	}
	if len(o.Ports) > 0 && m.rootless {
		if _, err := os.Stat(m.portAPI); err != nil {
			return nil, fmt.Errorf("publishing ports: the holder's port manager %s is not available: %w", m.portAPI, err)
		}
	}
	ctrNS, err := openNS(o.NetNSPath)
	if err != nil {
		return nil, err
	}
	defer ctrNS.Close()
	dev, ino, err := nsID(o.NetNSPath)
	if err != nil {
		return nil, fmt.Errorf("identifying network namespace %s: %w", o.NetNSPath, err)
	}
	outerNS, err := openNS(m.outer)
	if err != nil {
		if m.rootless {
			return nil, fmt.Errorf("%w (is the user namespace holder running? any nook command that needs it starts it)", err)
		}
		return nil, err
	}
	defer outerNS.Close()

	oh, err := nlHandle(outerNS)
	if err != nil {
		return nil, err
	}
	defer oh.Close()
	var res *Result
	err = m.locked(func() error {
		nets, err := m.loadAll()
		if err != nil {
			return err
		}
		if nets, err = m.ensureDefault(nets); err != nil {
			return err
		}
		atts, err := m.reserve(ctx, outerNS, oh, nets, o, dev, ino)
		if err == nil {
			res, err = m.connect(ctx, outerNS, oh, ctrNS, o, atts)
		}
		if err == nil {
			err = m.finish(nets, o, atts, res)
		}
		if err != nil {
			// Undo what this call made; earlier attachments stay.
			for _, a := range atts {
				if rerr := m.release(ctx, outerNS, a.net, a.lease); rerr != nil {
					err = errors.Join(err, fmt.Errorf("cleaning up: %w", rerr))
				}
				delete(a.net.Leases, o.ContainerID)
				if serr := m.save(a.net); serr != nil {
					err = errors.Join(err, serr)
				}
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// reserve resolves the networks, frees stale leases, allocates addresses
// and host ports and records the leases, and makes sure each bridge exists.
// Called with the lock held.
func (m *Manager) reserve(ctx context.Context, outerNS netns.NsHandle, oh *netlink.Handle, nets []*Network, o AttachOptions, dev, ino uint64) ([]attachment, error) {
	refs := o.Networks
	if len(refs) == 0 {
		refs = []string{DefaultNetwork}
	}
	var chosen []*Network
	seen := map[string]bool{}
	for _, r := range refs {
		n, err := find(nets, r)
		if err != nil {
			return nil, err
		}
		if !seen[n.ID] {
			seen[n.ID] = true
			chosen = append(chosen, n)
		}
	}
	// Interfaces already in the namespace (an earlier attach): new ones
	// are numbered after them, and only the first network ever attached
	// gets the default route and the published ports.
	existing := 0
	ifaces := map[string]bool{}
	for _, n := range nets {
		if l := n.Leases[o.ContainerID]; l != nil && leaseAlive(l) && l.NetNSDev == dev && l.NetNSIno == ino {
			existing++
			ifaces[l.Interface] = true
		}
	}
	nextIface := func() string {
		for i := 0; ; i++ {
			if name := fmt.Sprintf("eth%d", i); !ifaces[name] {
				ifaces[name] = true
				return name
			}
		}
	}
	if existing > 0 && len(o.Ports) > 0 {
		return nil, errors.New("ports can only be published when a container first attaches")
	}
	for _, n := range chosen {
		if err := m.freeStale(ctx, outerNS, n); err != nil {
			return nil, err
		}
		if n.Leases[o.ContainerID] != nil {
			return nil, fmt.Errorf("container %s is already connected to network %s", displayName(o), n.Name)
		}
	}
	ports, err := m.choosePorts(outerNS, nets, o.ContainerID, o.Ports)
	if err != nil {
		return nil, err
	}
	var atts []attachment
	now := time.Now().UTC()
	for i, n := range chosen {
		var static netip.Addr
		if s := o.StaticIPs[n.Name]; s != "" {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("invalid IP address %q for network %s", s, n.Name)
			}
			static = a
		}
		ip, err := allocate(n, static)
		if err != nil {
			return nil, err
		}
		l := &Lease{
			ContainerID: o.ContainerID,
			Name:        o.Name,
			IP:          ip.String(),
			MAC:         macFor(ip).String(),
			Interface:   nextIface(),
			HostVeth:    vethName(o.ContainerID, n.ID),
			NetNS:       o.NetNSPath,
			NetNSDev:    dev,
			NetNSIno:    ino,
			Created:     now,
		}
		if !n.Default() {
			l.Aliases = dedupe(append(append([]string(nil), o.Aliases...), o.NetworkAliases[n.Name]...))
		}
		if i == 0 && existing == 0 {
			l.Ports = ports
		}
		n.Leases[o.ContainerID] = l
		atts = append(atts, attachment{net: n, lease: l, first: i == 0 && existing == 0})
	}
	spec, err := m.hostsSpec(nets, o, atts)
	if err != nil {
		for _, a := range atts {
			delete(a.net.Leases, o.ContainerID)
		}
		return nil, err
	}
	for _, a := range atts {
		a.lease.Hosts = spec
		if err := m.save(a.net); err != nil {
			return atts, err
		}
	}
	for _, a := range atts {
		if err := m.ensureBridge(outerNS, oh, a.net); err != nil {
			return atts, err
		}
	}
	return atts, nil
}

func displayName(o AttachOptions) string {
	if o.Name != "" {
		return o.Name
	}
	return o.ContainerID[:min(12, len(o.ContainerID))]
}

func dedupe(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// vethName is the host end of a container's pair on a network: derived
// from both IDs, so a lost lease still names it.
func vethName(cid, nid string) string {
	h := sha256.Sum256([]byte(cid + "/" + nid))
	return vethPrefix + hex.EncodeToString(h[:])[:10]
}

// ensureBridge creates n's bridge in the outer namespace with its gateway
// address, forwarding and NAT rules. A bridge that is up is taken as ready:
// it is brought up last. Called with the lock held.
func (m *Manager) ensureBridge(outerNS netns.NsHandle, h *netlink.Handle, n *Network) error {
	if l, err := h.LinkByName(n.Bridge); err == nil && l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return fmt.Errorf("network %s: bad subnet %q", n.Name, n.Subnet)
	}
	gw, err := netip.ParseAddr(n.Gateway)
	if err != nil {
		return fmt.Errorf("network %s: bad gateway %q", n.Name, n.Gateway)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, MTU: n.MTU}}
	if err := h.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating bridge %s for network %s: %w", n.Bridge, n.Name, err)
	}
	l, err := h.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("finding bridge %s: %w", n.Bridge, err)
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return fmt.Errorf("interface %s exists and is not a bridge (%s): remove it or rename the network's bridge", n.Bridge, l.Type())
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}}
	if err := h.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("setting %s/%d on bridge %s: %w", gw, subnet.Bits(), n.Bridge, err)
	}
	err = inNS(outerNS, func() error {
		if err := sysctl("net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
		if !m.rootless {
			// Published ports are DNATed also for connections to
			// 127.0.0.1; the kernel routes such packets out of the
			// bridge only with route_localnet.
			if err := sysctl("net.ipv4.conf."+n.Bridge+".route_localnet", "1"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	rules, err := networkRules(n, m.rootless)
	if err != nil {
		return err
	}
	c, err := nftConn(outerNS)
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	if err := replaceRules(c, netTag(n), rules); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing up bridge %s: %w", n.Bridge, err)
	}
	return nil
}

// connect creates the veth pairs, addresses and routes, publishes the
// ports and writes the files.
func (m *Manager) connect(ctx context.Context, outerNS netns.NsHandle, oh *netlink.Handle, ctrNS netns.NsHandle, o AttachOptions, atts []attachment) (*Result, error) {
	ch, err := nlHandle(ctrNS)
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	if err := loopbackUp(ch); err != nil {
		return nil, err
	}
	res := &Result{Mode: "bridge"}
	for _, a := range atts {
		ep, err := plumb(oh, ch, ctrNS, a)
		if err != nil {
			return nil, err
		}
		res.Endpoints = append(res.Endpoints, ep)
	}
	for _, a := range atts {
		if a.first && len(a.lease.Ports) > 0 {
			if err := m.publish(ctx, outerNS, a.lease); err != nil {
				return nil, err
			}
			res.Ports = a.lease.Ports
		}
	}
	return res, nil
}

func loopbackUp(h *netlink.Handle) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding the loopback interface: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing up the loopback interface: %w", err)
	}
	return nil
}

// plumb makes one veth pair: the host end on the bridge, the other end
// created directly inside the container's namespace with its final name,
// MAC and MTU, then given its address (and the default route).
func plumb(oh, ch *netlink.Handle, ctrNS netns.NsHandle, a attachment) (Endpoint, error) {
	n, l := a.net, a.lease
	br, err := oh.LinkByName(n.Bridge)
	if err != nil {
		return Endpoint{}, fmt.Errorf("finding bridge %s of network %s: %w", n.Bridge, n.Name, err)
	}
	mac, err := net.ParseMAC(l.MAC)
	if err != nil {
		return Endpoint{}, fmt.Errorf("lease MAC %q: %w", l.MAC, err)
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name:        l.HostVeth,
			MTU:         n.MTU,
			MasterIndex: br.Attrs().Index,
			Flags:       net.FlagUp,
		},
		PeerName:         l.Interface,
		PeerNamespace:    netlink.NsFd(int(ctrNS)),
		PeerHardwareAddr: mac,
		PeerMTU:          uint32(n.MTU),
	}
	err = oh.LinkAdd(veth)
	if errors.Is(err, unix.EEXIST) {
		// The same container's previous namespace is gone and the kernel
		// is still deleting its pair in the background (a restart right
		// after a stop): the lease is this call's, so the old link is a
		// leftover. Delete it and try once more.
		if old, lerr := oh.LinkByName(l.HostVeth); lerr == nil {
			if derr := oh.LinkDel(old); derr != nil && !errors.Is(derr, unix.ENODEV) {
				return Endpoint{}, fmt.Errorf("removing the leftover %s: %w", l.HostVeth, derr)
			}
		}
		err = oh.LinkAdd(veth)
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return Endpoint{}, fmt.Errorf("creating the veth pair for network %s: %s or %s already exists", n.Name, l.HostVeth, l.Interface)
		}
		return Endpoint{}, fmt.Errorf("creating the veth pair for network %s: %w", n.Name, err)
	}
	peer, err := ch.LinkByName(l.Interface)
	if err != nil {
		return Endpoint{}, fmt.Errorf("finding %s in the container: %w", l.Interface, err)
	}
	ip, _ := netip.ParseAddr(l.IP)
	bits := prefixLen(n)
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(bits, 32)}}
	if err := ch.AddrAdd(peer, addr); err != nil {
		return Endpoint{}, fmt.Errorf("adding %s/%d to %s: %w", ip, bits, l.Interface, err)
	}
	if err := ch.LinkSetUp(peer); err != nil {
		return Endpoint{}, fmt.Errorf("bringing up %s: %w", l.Interface, err)
	}
	gw, _ := netip.ParseAddr(n.Gateway)
	if a.first {
		r := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: gw.AsSlice()}
		if err := ch.RouteAdd(r); err != nil {
			return Endpoint{}, fmt.Errorf("adding the default route via %s: %w", gw, err)
		}
	}
	return Endpoint{
		Network: n.Name, NetworkID: n.ID, Interface: l.Interface, IP: l.IP, PrefixLen: bits,
		Gateway: n.Gateway, MAC: l.MAC, Aliases: l.Aliases,
	}, nil
}

// Detach disconnects a container from networks (all of them when none are
// named): its veth pairs, published ports and leases go, and its peers'
// hosts files are rewritten. Detaching what is not attached is not an
// error, so the runner may call it on every exit path.
func (m *Manager) Detach(ctx context.Context, containerID string, networks ...string) error {
	if containerID == "" {
		return errors.New("detach: no container ID")
	}
	var ids []string
	if len(networks) > 0 {
		nets, err := m.List()
		if err != nil {
			return err
		}
		for _, r := range networks {
			n, err := find(nets, r)
			if err != nil {
				return err
			}
			ids = append(ids, n.ID)
		}
	}
	return m.detach(ctx, containerID, ids, len(networks) == 0)
}

// detach releases the leases of containerID on the networks with the given
// IDs (on all of them when all is set).
func (m *Manager) detach(ctx context.Context, containerID string, netIDs []string, all bool) error {
	want := map[string]bool{}
	for _, id := range netIDs {
		want[id] = true
	}
	outerNS := m.outerOrNone()
	defer outerNS.Close()
	return m.locked(func() error {
		nets, err := m.loadAll()
		if err != nil {
			return err
		}
		var errs []error
		touched := map[string]bool{}
		for _, n := range nets {
			l := n.Leases[containerID]
			if l == nil || (!all && !want[n.ID]) {
				continue
			}
			if err := m.release(ctx, outerNS, n, l); err != nil {
				errs = append(errs, err)
			}
			delete(n.Leases, containerID)
			if err := m.save(n); err != nil {
				errs = append(errs, err)
			}
			touched[n.ID] = true
		}
		if len(touched) > 0 {
			m.refreshPeers(nets, touched, containerID)
		}
		return errors.Join(errs...)
	})
}

// release removes what a lease holds in the outer namespace: the veth pair
// and the published ports. Missing pieces are fine.
func (m *Manager) release(ctx context.Context, outerNS netns.NsHandle, n *Network, l *Lease) error {
	var errs []error
	// When the container's namespace is gone, the kernel removes the pair
	// by itself, in the background; deleting it here would wait for that
	// (tens of milliseconds of RCU grace periods on every container exit).
	if outerNS.IsOpen() && leaseAlive(l) {
		h, err := nlHandle(outerNS)
		if err != nil {
			return err
		}
		defer h.Close()
		if link, err := h.LinkByName(l.HostVeth); err == nil {
			if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("removing %s: %w", l.HostVeth, err))
			}
		}
	}
	if len(l.Ports) > 0 {
		if err := m.unpublish(ctx, outerNS, l); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// freeStale drops n's leases whose namespace is gone, releasing what they
// held. Called with the lock held; saves n when it changed.
func (m *Manager) freeStale(ctx context.Context, outerNS netns.NsHandle, n *Network) error {
	gone := dropStale(n, leaseAlive)
	if len(gone) == 0 {
		return nil
	}
	for _, l := range gone {
		if err := m.release(ctx, outerNS, n, l); err != nil {
			fmt.Fprintf(m.warn, "nook: warning: cleaning up after container %.12s: %v\n", l.ContainerID, err)
		}
	}
	return m.save(n)
}

// Reconcile frees every lease whose container is not live: its namespace
// is gone, or live(containerID) reports false and the namespace is one of
// NewNetNS's files (which it then deletes). A lease whose namespace is a
// live process's stays: it may belong to another store's container. It also
// removes published ports and DNAT rules no lease accounts for.
func (m *Manager) Reconcile(ctx context.Context, live func(containerID string) bool) error {
	outerNS := m.outerOrNone()
	defer outerNS.Close()
	return m.locked(func() error {
		nets, err := m.loadAll()
		if err != nil {
			return err
		}
		var errs []error
		touched := map[string]bool{}
		for _, n := range nets {
			gone := dropStale(n, func(l *Lease) bool {
				if !leaseAlive(l) {
					return false
				}
				if live != nil && !live(l.ContainerID) && strings.HasPrefix(l.NetNS, NetNSDir()+"/") {
					if err := DeleteNetNS(l.NetNS); err != nil {
						errs = append(errs, err)
					}
					return false
				}
				return true
			})
			for _, l := range gone {
				if err := m.release(ctx, outerNS, n, l); err != nil {
					errs = append(errs, err)
				}
			}
			if len(gone) > 0 {
				touched[n.ID] = true
				if err := m.save(n); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if outerNS.IsOpen() {
			if err := m.orphanPorts(ctx, outerNS, nets); err != nil {
				errs = append(errs, err)
			}
		}
		if len(touched) > 0 {
			m.refreshPeers(nets, touched, "")
		}
		return errors.Join(errs...)
	})
}

// Ports returns the ports published for a container (for `nook port` and
// `ps`); nil when it has none or is not attached.
func (m *Manager) Ports(containerID string) ([]PortMapping, error) {
	nets, err := m.List()
	if err != nil {
		return nil, err
	}
	var out []PortMapping
	for _, n := range nets {
		if l := n.Leases[containerID]; l != nil {
			out = append(out, l.Ports...)
		}
	}
	return out, nil
}

// Endpoints returns a container's current endpoints, first network first.
func (m *Manager) Endpoints(containerID string) ([]Endpoint, error) {
	nets, err := m.List()
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for _, n := range nets {
		if l := n.Leases[containerID]; l != nil {
			out = append(out, Endpoint{Network: n.Name, NetworkID: n.ID, Interface: l.Interface, IP: l.IP,
				PrefixLen: prefixLen(n), Gateway: n.Gateway, MAC: l.MAC, Aliases: l.Aliases})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Interface < out[j].Interface })
	return out, nil
}
