package network

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/docker/docker/libnetwork/resolvconf"
)

// SlirpDNS is slirp4netns's built-in resolver, as seen from the holder's
// network namespace (and, routed through the bridge, from containers).
const SlirpDNS = "10.0.2.3"

// HostGatewayName is the special --add-host address meaning "the host".
const HostGatewayName = "host-gateway"

// HostEntry is one /etc/hosts line.
type HostEntry struct {
	IP    string   `json:"ip"`
	Names []string `json:"names"`
}

// HostsSpec is what a container's /etc/hosts is made of, apart from its
// peers (which are read from the leases each time it is written).
type HostsSpec struct {
	Path       string      `json:"path,omitempty"` // kept current as peers come and go
	Hostname   string      `json:"hostname"`
	Domainname string      `json:"domainname,omitempty"`
	Name       string      `json:"name,omitempty"` // container name, also resolvable locally
	SelfIP     string      `json:"self_ip,omitempty"`
	Extra      []HostEntry `json:"extra,omitempty"` // --add-host, resolved
}

// BuildHosts renders /etc/hosts as docker does: loopback entries, the
// --add-host entries, the container's own address and names, then its
// peers on shared user-defined networks (nook has no embedded DNS server,
// so peers are found through this file).
func BuildHosts(s HostsSpec, peers []HostEntry) []byte {
	var b bytes.Buffer
	line := func(ip string, names ...string) { hostsLine(&b, ip, names) }
	line("127.0.0.1", "localhost")
	line("::1", "localhost", "ip6-localhost", "ip6-loopback")
	line("fe00::", "ip6-localnet")
	line("ff00::", "ip6-mcastprefix")
	line("ff02::1", "ip6-allnodes")
	line("ff02::2", "ip6-allrouters")
	b.Write(HostsLines(s.Extra))
	if s.SelfIP != "" && s.Hostname != "" {
		names := []string{s.Hostname}
		if s.Domainname != "" {
			names = []string{s.Hostname + "." + s.Domainname, s.Hostname}
		}
		if s.Name != "" && s.Name != s.Hostname {
			names = append(names, s.Name)
		}
		line(s.SelfIP, names...)
	}
	for _, p := range peers {
		if len(p.Names) > 0 {
			line(p.IP, p.Names...)
		}
	}
	return b.Bytes()
}

func hostsLine(b *bytes.Buffer, ip string, names []string) {
	fmt.Fprintf(b, "%s\t%s\n", ip, strings.Join(names, " "))
}

// HostsLines renders entries as /etc/hosts lines.
func HostsLines(entries []HostEntry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		if len(e.Names) > 0 {
			hostsLine(&b, e.IP, e.Names)
		}
	}
	return b.Bytes()
}

// ParseAddHosts turns --add-host values ("name:ip", "name=ip", with
// "host-gateway" for the host's address; IPv6 addresses may be bracketed)
// into entries. Names that share an address stay on separate lines, in
// the order given, as docker writes them.
func ParseAddHosts(specs []string, hostGateway string) ([]HostEntry, error) {
	var out []HostEntry
	for _, s := range specs {
		name, ip, ok := strings.Cut(s, "=")
		if !ok {
			name, ip, ok = strings.Cut(s, ":")
		}
		if !ok || name == "" || ip == "" {
			return nil, fmt.Errorf("invalid --add-host %q: use NAME:IP (or NAME:%s)", s, HostGatewayName)
		}
		ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
		if ip == HostGatewayName {
			if hostGateway == "" {
				return nil, fmt.Errorf("--add-host %q: the host's address is not known", s)
			}
			ip = hostGateway
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("invalid --add-host %q: %q is not an IP address", s, ip)
		}
		out = append(out, HostEntry{IP: a.String(), Names: []string{name}})
	}
	return out, nil
}

// ResolvSpec says how to derive a container's /etc/resolv.conf.
type ResolvSpec struct {
	// Nameservers replaces the host's nameservers (--dns).
	DNS []string
	// Search replaces the host's search domains (--dns-search); "." alone
	// means none.
	Search []string
	// Options replaces the host's options (--dns-option).
	Options []string
	// Default is the nameserver used when DNS is empty: slirp4netns's
	// resolver for rootless bridge networks. Empty = the host's
	// nameservers, loopback ones removed, else 8.8.8.8 and 8.8.4.4.
	Default []string
	// KeepLoopback keeps the host's loopback nameservers (host network).
	KeepLoopback bool
}

// fallbackDNS are docker's nameservers of last resort.
var fallbackDNS = []string{"8.8.8.8", "8.8.4.4"}

// BuildResolvConf renders a container's /etc/resolv.conf from the host's
// file (parsed with docker's own resolv.conf package) and s, with docker's
// rules: each of nameservers, search and options is replaced when given and
// otherwise taken from the host; loopback nameservers of the host (a local
// caching resolver) cannot be reached from a container and are dropped.
func BuildResolvConf(host []byte, s ResolvSpec) ([]byte, error) {
	ns := s.DNS
	for _, a := range ns {
		if _, err := netip.ParseAddr(a); err != nil {
			return nil, fmt.Errorf("invalid --dns %q: not an IP address", a)
		}
	}
	if len(ns) == 0 {
		ns = s.Default
	}
	if len(ns) == 0 {
		for _, a := range resolvconf.GetNameservers(host, resolvconf.IPv4) {
			if ip, err := netip.ParseAddr(a); err == nil && (s.KeepLoopback || !ip.IsLoopback()) {
				ns = append(ns, a)
			}
		}
	}
	if len(ns) == 0 {
		ns = fallbackDNS
	}
	search := resolvconf.GetSearchDomains(host)
	if len(s.Search) > 0 {
		search = s.Search
		if len(search) == 1 && search[0] == "." {
			search = nil
		}
	}
	opts := resolvconf.GetOptions(host)
	if len(s.Options) > 0 {
		opts = s.Options
	}
	var b bytes.Buffer
	for _, a := range ns {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	}
	return b.Bytes(), nil
}

// BuildHostname renders /etc/hostname.
func BuildHostname(hostname string) []byte { return []byte(hostname + "\n") }

// hostResolvConf reads the host's resolver configuration (systemd-resolved's
// upstream file when /etc/resolv.conf only names its local stub).
func (m *Manager) hostResolvConf() []byte {
	p := m.resolvConf
	if p == "" {
		p = resolvconf.Path()
	}
	b, err := os.ReadFile(p)
	if err != nil {
		fmt.Fprintf(m.warn, "nook: warning: reading %s: %v; containers get the default nameservers\n", p, err)
	}
	return b
}

// peerEntries lists, for a container on nets, every other container on
// the same user-defined networks by name and aliases (the default network
// gives no name resolution, as docker's default bridge).
func peerEntries(nets []*Network, self string, onNets map[string]bool) []HostEntry {
	var out []HostEntry
	for _, n := range nets {
		if n.Default() || !onNets[n.ID] {
			continue
		}
		ids := make([]string, 0, len(n.Leases))
		for id := range n.Leases {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			l := n.Leases[id]
			if id == self {
				continue
			}
			var names []string
			seen := map[string]bool{}
			for _, nm := range append([]string{l.Name}, l.Aliases...) {
				if nm != "" && !seen[nm] {
					seen[nm] = true
					names = append(names, nm)
				}
			}
			if len(names) > 0 {
				out = append(out, HostEntry{IP: l.IP, Names: names})
			}
		}
	}
	return out
}
