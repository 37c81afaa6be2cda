package network

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
)

// ErrPoolExhausted is returned (wrapped) when a network has no free address.
var ErrPoolExhausted = fmt.Errorf("no free address")

// allocRange is the range containers get addresses from: the IP range if
// one was given, else the subnet.
func allocRange(n *Network) (netip.Prefix, netip.Prefix, error) {
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return netip.Prefix{}, netip.Prefix{}, fmt.Errorf("network %s: bad subnet %q: %w", n.Name, n.Subnet, err)
	}
	r := subnet
	if n.IPRange != "" {
		if r, err = netip.ParsePrefix(n.IPRange); err != nil {
			return netip.Prefix{}, netip.Prefix{}, fmt.Errorf("network %s: bad IP range %q: %w", n.Name, n.IPRange, err)
		}
	}
	return subnet, r, nil
}

// usable reports whether a may be given to a container on n.
func usable(n *Network, subnet netip.Prefix, a netip.Addr) bool {
	return subnet.Contains(a) && a != subnet.Masked().Addr() && a != lastAddr(subnet) && a.String() != n.Gateway
}

// allocate picks an address on n for a container: static when valid,
// otherwise the first free one after n.Last (round-robin, so that a just
// freed address and its neighbours' ARP and conntrack entries are not
// reused at once). The caller records the lease and saves n.
func allocate(n *Network, static netip.Addr) (netip.Addr, error) {
	subnet, r, err := allocRange(n)
	if err != nil {
		return netip.Addr{}, err
	}
	used := map[netip.Addr]string{}
	for id, l := range n.Leases {
		if a, err := netip.ParseAddr(l.IP); err == nil {
			used[a] = id
		}
	}
	if static.IsValid() {
		static = static.Unmap()
		if !usable(n, subnet, static) {
			return netip.Addr{}, fmt.Errorf("address %s is not usable on network %s (subnet %s, gateway %s)", static, n.Name, n.Subnet, n.Gateway)
		}
		if id, ok := used[static]; ok {
			return netip.Addr{}, fmt.Errorf("address %s on network %s is already in use by container %.12s", static, n.Name, id)
		}
		n.Last = static.String()
		return static, nil
	}
	first, last := r.Masked().Addr(), lastAddr(r)
	start := first
	if l, err := netip.ParseAddr(n.Last); err == nil && r.Contains(l) && l != last {
		start = l.Next()
	}
	a := start
	for {
		if usable(n, subnet, a) {
			if _, busy := used[a]; !busy {
				n.Last = a.String()
				return a, nil
			}
		}
		if a == last {
			a = first
		} else {
			a = a.Next()
		}
		if a == start {
			return netip.Addr{}, fmt.Errorf("network %s (%s): %w", n.Name, r, ErrPoolExhausted)
		}
	}
}

// macFor derives a locally administered MAC address from an IPv4 address,
// as docker does (02:42:a:b:c:d): a reused address keeps its MAC, so peers'
// ARP caches stay right.
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

// dropStale removes the leases that alive reports dead and returns them.
func dropStale(n *Network, alive func(*Lease) bool) []*Lease {
	var gone []*Lease
	for id, l := range n.Leases {
		if !alive(l) {
			gone = append(gone, l)
			delete(n.Leases, id)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].ContainerID < gone[j].ContainerID })
	return gone
}

// prefixLen is the subnet's mask length.
func prefixLen(n *Network) int {
	p, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return 0
	}
	return p.Bits()
}
