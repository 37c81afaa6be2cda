package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/rootless-containers/rootlesskit/v2/pkg/api/client"
	"github.com/rootless-containers/rootlesskit/v2/pkg/port"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Publishing.
//
// Rootless, the holder's port manager (rootlesskit's builtin port driver)
// listens on the host port in the host's namespace and, for each
// connection, has its child dial the container's address inside the
// holder's namespace and hand the socket back: one copy loop in the
// holder's parent process, nothing in the container's path.
//
// As root there is no holder: nftables DNAT rules in the outer namespace
// rewrite connections to the host port (from outside, and from the host
// itself, 127.0.0.1 included) to the container's address. Nothing copies
// bytes and the container sees the client's address (except for
// connections from the host's loopback, which are masqueraded). DNAT
// reserves no socket, so Attach test-binds each port first to refuse one
// that a host program already uses, as a userspace proxy would.

// portKey identifies a host port for conflicts.
type portKey struct {
	proto string
	port  uint16
}

// hostIPsOverlap reports whether two host addresses can collide ("" is
// every address).
func hostIPsOverlap(a, b string) bool {
	return a == "" || b == "" || a == "0.0.0.0" || b == "0.0.0.0" || a == "::" || b == "::" || a == b
}

// choosePorts validates the requested mappings and fixes every host port:
// free ones are picked for "random" and range requests, and taken ones are
// refused by name before anything is created. Called with the lock held.
func (m *Manager) choosePorts(outerNS netns.NsHandle, nets []*Network, cid string, req []PortMapping) ([]PortMapping, error) {
	if len(req) == 0 {
		return nil, nil
	}
	type owner struct {
		ip  string
		cid string
	}
	taken := map[portKey][]owner{}
	for _, n := range nets {
		for id, l := range n.Leases {
			if id == cid {
				continue
			}
			for _, p := range l.Ports {
				k := portKey{p.Protocol, p.HostPort}
				taken[k] = append(taken[k], owner{p.HostIP, displayLease(l)})
			}
		}
	}
	busyBy := func(p PortMapping) string {
		for _, o := range taken[portKey{p.Protocol, p.HostPort}] {
			if hostIPsOverlap(o.ip, p.HostIP) {
				return o.cid
			}
		}
		return ""
	}
	const self = "\x00self"
	out := make([]PortMapping, 0, len(req))
	for _, p := range req {
		if err := m.checkMapping(p); err != nil {
			return nil, err
		}
		switch {
		case p.HostPort != 0 && p.HostPortEnd == 0:
			switch who := busyBy(p); who {
			case "":
			case self:
				return nil, fmt.Errorf("host port %s is published twice", hostPortName(p))
			default:
				return nil, fmt.Errorf("host port %s is already published by container %s", hostPortName(p), who)
			}
			if err := m.testBind(outerNS, p); err != nil {
				return nil, err
			}
		default:
			lo, hi := p.HostPort, p.HostPortEnd
			found := false
			for tries := 0; tries < 64 && !found; tries++ {
				var cand PortMapping
				if lo == 0 {
					q, err := m.freePort(outerNS, p)
					if err != nil {
						return nil, err
					}
					cand = q
				} else {
					port := int(lo) + tries
					if port > int(hi) {
						break
					}
					cand = p
					cand.HostPort, cand.HostPortEnd = uint16(port), 0
					if m.testBind(outerNS, cand) != nil {
						continue
					}
				}
				if busyBy(cand) == "" {
					p, found = cand, true
				}
			}
			if !found {
				if lo == 0 {
					return nil, fmt.Errorf("no free host port found for %s", p.ContainerPortKey())
				}
				return nil, fmt.Errorf("every host port in %d-%d/%s is in use", lo, hi, p.Protocol)
			}
		}
		p.HostPortEnd = 0
		k := portKey{p.Protocol, p.HostPort}
		taken[k] = append(taken[k], owner{p.HostIP, self})
		out = append(out, p)
	}
	return out, nil
}

func displayLease(l *Lease) string {
	if l.Name != "" {
		return l.Name
	}
	return l.ContainerID[:min(12, len(l.ContainerID))]
}

func hostPortName(p PortMapping) string {
	s := strconv.Itoa(int(p.HostPort)) + "/" + p.Protocol
	if p.HostIP != "" {
		s = net.JoinHostPort(p.HostIP, strconv.Itoa(int(p.HostPort))) + "/" + p.Protocol
	}
	return s
}

func (m *Manager) checkMapping(p PortMapping) error {
	switch p.Protocol {
	case "tcp", "udp":
	case "sctp":
		if m.rootless {
			return fmt.Errorf("publishing %s: SCTP ports cannot be published rootless (the holder's port forwarder handles TCP and UDP)", p.ContainerPortKey())
		}
	default:
		return fmt.Errorf("publishing %d/%s: unknown protocol", p.ContainerPort, p.Protocol)
	}
	if p.ContainerPort == 0 {
		return errors.New("publishing: container port 0")
	}
	if p.HostIP != "" {
		a, err := netip.ParseAddr(p.HostIP)
		if err != nil {
			return fmt.Errorf("publishing %s: bad host address %q", p.ContainerPortKey(), p.HostIP)
		}
		if !m.rootless && !a.Is4() {
			return fmt.Errorf("publishing %s on %s: only IPv4 host addresses are supported as root", p.ContainerPortKey(), p.HostIP)
		}
	}
	return nil
}

// bindNS is where host ports are bound: the caller's namespace rootless
// (the holder's parent listens in the host's namespace, which a joined
// nook shares), else the outer namespace.
func (m *Manager) bindNS(outerNS netns.NsHandle) netns.NsHandle {
	if m.rootless {
		return netns.None()
	}
	return outerNS
}

func listenAddr(p PortMapping, port uint16) string {
	return net.JoinHostPort(p.HostIP, strconv.Itoa(int(port)))
}

// bindOnce binds p (port 0 = any) in ns and returns the port bound.
func bindOnce(ns netns.NsHandle, p PortMapping, port uint16) (uint16, error) {
	var got uint16
	do := func() error {
		switch p.Protocol {
		case "udp":
			c, err := net.ListenPacket("udp", listenAddr(p, port))
			if err != nil {
				return err
			}
			got = uint16(c.LocalAddr().(*net.UDPAddr).Port)
			return c.Close()
		case "sctp":
			// No SCTP in Go's net: take the port as given.
			got = port
			return nil
		default:
			l, err := net.Listen("tcp", listenAddr(p, port))
			if err != nil {
				return err
			}
			got = uint16(l.Addr().(*net.TCPAddr).Port)
			return l.Close()
		}
	}
	if ns.IsOpen() {
		return got, inNS(ns, do)
	}
	return got, do()
}

// testBind refuses a host port that something already listens on.
func (m *Manager) testBind(outerNS netns.NsHandle, p PortMapping) error {
	if _, err := bindOnce(m.bindNS(outerNS), p, p.HostPort); err != nil {
		return portError(p, err)
	}
	return nil
}

// freePort picks a free host port for p.
func (m *Manager) freePort(outerNS netns.NsHandle, p PortMapping) (PortMapping, error) {
	port, err := bindOnce(m.bindNS(outerNS), p, 0)
	if err != nil {
		return p, fmt.Errorf("finding a free host port for %s: %w", p.ContainerPortKey(), err)
	}
	p.HostPort = port
	return p, nil
}

// portError words a failure to take a host port for users.
func portError(p PortMapping, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, unix.EADDRINUSE) || strings.Contains(msg, "address already in use"):
		return fmt.Errorf("host port %s is already in use", hostPortName(p))
	case errors.Is(err, unix.EACCES) || strings.Contains(msg, "permission denied"):
		start := "1024"
		if b, e := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); e == nil {
			start = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("host port %s: ports below %s are privileged; publish a higher port, or an administrator can lower net.ipv4.ip_unprivileged_port_start", hostPortName(p), start)
	case errors.Is(err, unix.EADDRNOTAVAIL) || strings.Contains(msg, "assign requested address"):
		return fmt.Errorf("host port %s: %s is not an address of this host", hostPortName(p), p.HostIP)
	}
	return fmt.Errorf("host port %s: %w", hostPortName(p), err)
}

// publish makes a lease's ports reachable from the host.
func (m *Manager) publish(ctx context.Context, outerNS netns.NsHandle, l *Lease) error {
	cip, err := netip.ParseAddr(l.IP)
	if err != nil {
		return fmt.Errorf("lease address %q: %w", l.IP, err)
	}
	if !m.rootless {
		rules, err := dnatRules(l.ContainerID, cip, l.Ports)
		if err != nil {
			return err
		}
		c, err := nftConn(outerNS)
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		if err := replaceRules(c, ctrTag(l.ContainerID), rules); err != nil {
			return fmt.Errorf("publishing ports: %w", err)
		}
		return nil
	}
	pm, err := m.portManager()
	if err != nil {
		return err
	}
	for _, p := range l.Ports {
		spec := port.Spec{Proto: p.Protocol, ParentIP: p.HostIP, ParentPort: int(p.HostPort), ChildIP: l.IP, ChildPort: int(p.ContainerPort)}
		if _, err := pm.AddPort(ctx, spec); err != nil {
			return fmt.Errorf("publishing %s: %w", p, portError(p, err))
		}
	}
	return nil
}

// unpublish removes a lease's published ports. Rootless, the holder's
// ports are matched by the container's address and port, so ports whose
// record was lost in a crash are found too.
func (m *Manager) unpublish(ctx context.Context, outerNS netns.NsHandle, l *Lease) error {
	if !m.rootless {
		if !outerNS.IsOpen() {
			return nil
		}
		c, err := nftConn(outerNS)
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		tag := ctrTag(l.ContainerID)
		return removeTagged(c, func(t string) bool { return t == tag })
	}
	if _, err := os.Stat(m.portAPI); err != nil {
		return nil // no holder: its listeners are gone with it
	}
	pm, err := m.portManager()
	if err != nil {
		return err
	}
	sts, err := pm.ListPorts(ctx)
	if err != nil {
		return fmt.Errorf("listing published ports: %w", err)
	}
	mine := map[int]bool{}
	for _, p := range l.Ports {
		mine[int(p.ContainerPort)] = true
	}
	var errs []error
	for _, st := range sts {
		if st.Spec.ChildIP == l.IP && mine[st.Spec.ChildPort] {
			if err := pm.RemovePort(ctx, st.ID); err != nil {
				errs = append(errs, fmt.Errorf("unpublishing host port %d: %w", st.Spec.ParentPort, err))
			}
		}
	}
	return errors.Join(errs...)
}

// orphanPorts removes published ports and DNAT rules that no lease
// accounts for (left by a nook killed half-way). Called with the lock held.
func (m *Manager) orphanPorts(ctx context.Context, outerNS netns.NsHandle, nets []*Network) error {
	if !m.rootless {
		leased := map[string]bool{}
		for _, n := range nets {
			for id := range n.Leases {
				leased[id] = true
			}
		}
		c, err := nftConn(outerNS)
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		tags, err := containerTags(c)
		if err != nil {
			return err
		}
		stale := map[string]bool{}
		for id := range tags {
			if !leased[id] {
				stale[ctrTag(id)] = true
			}
		}
		if len(stale) == 0 {
			return nil
		}
		return removeTagged(c, func(t string) bool { return stale[t] })
	}
	if _, err := os.Stat(m.portAPI); err != nil {
		return nil
	}
	pm, err := m.portManager()
	if err != nil {
		return err
	}
	sts, err := pm.ListPorts(ctx)
	if err != nil {
		return fmt.Errorf("listing published ports: %w", err)
	}
	var subnets []netip.Prefix
	leased := map[string]bool{}
	for _, n := range nets {
		if p, err := netip.ParsePrefix(n.Subnet); err == nil {
			subnets = append(subnets, p)
		}
		for _, l := range n.Leases {
			for _, p := range l.Ports {
				leased[net.JoinHostPort(l.IP, strconv.Itoa(int(p.ContainerPort)))] = true
			}
		}
	}
	var errs []error
	for _, st := range sts {
		a, err := netip.ParseAddr(st.Spec.ChildIP)
		if err != nil {
			continue
		}
		ours := false
		for _, p := range subnets {
			ours = ours || p.Contains(a)
		}
		if ours && !leased[net.JoinHostPort(st.Spec.ChildIP, strconv.Itoa(st.Spec.ChildPort))] {
			if err := pm.RemovePort(ctx, st.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) portManager() (port.Manager, error) {
	c, err := client.New(m.portAPI)
	if err != nil {
		return nil, fmt.Errorf("connecting to the holder's port manager %s: %w", m.portAPI, err)
	}
	return c.PortManager(), nil
}
