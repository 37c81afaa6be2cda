package network

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/go-connections/nat"
)

// PortMapping publishes one container port on the host.
//
// HostPort 0 asks for a free port chosen at attach time; with HostPortEnd
// set, the chosen port lies in HostPort..HostPortEnd (docker's
// "-p 8000-8010:80"). After Attach, Result.Ports carries the ports actually
// bound, with HostPortEnd cleared.
type PortMapping struct {
	HostIP        string `json:"host_ip,omitempty"` // "" = every address
	HostPort      uint16 `json:"host_port"`
	HostPortEnd   uint16 `json:"host_port_end,omitempty"`
	ContainerPort uint16 `json:"container_port"`
	Protocol      string `json:"protocol"` // tcp, udp or sctp
}

// String renders the mapping as docker ps does: "0.0.0.0:8080->80/tcp".
func (p PortMapping) String() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	host := strconv.Itoa(int(p.HostPort))
	if p.HostPortEnd > p.HostPort {
		host += "-" + strconv.Itoa(int(p.HostPortEnd))
	}
	return fmt.Sprintf("%s->%d/%s", net.JoinHostPort(ip, host), p.ContainerPort, p.Protocol)
}

// ContainerPortKey is the docker form of the container side: "80/tcp".
func (p PortMapping) ContainerPortKey() string {
	return fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol)
}

// ParsePublish parses -p/--publish values ("[ip:][hostport:]containerport
// [/proto]", with ranges) with docker's own parser. A range on both sides
// maps port for port; a host range against one container port picks one
// free host port in that range.
func ParsePublish(specs []string) ([]PortMapping, error) {
	var out []PortMapping
	for _, spec := range specs {
		pms, err := nat.ParsePortSpec(spec)
		if err != nil {
			return nil, fmt.Errorf("invalid publish spec %q: %w", spec, err)
		}
		for _, pm := range pms {
			cport := pm.Port.Int()
			if cport < 1 || cport > 65535 {
				return nil, fmt.Errorf("invalid publish spec %q: container port must be 1-65535", spec)
			}
			m := PortMapping{HostIP: pm.Binding.HostIP, ContainerPort: uint16(cport), Protocol: pm.Port.Proto()}
			if m.HostIP != "" {
				a, err := netip.ParseAddr(m.HostIP)
				if err != nil {
					return nil, fmt.Errorf("invalid publish spec %q: host address %q: %w", spec, m.HostIP, err)
				}
				m.HostIP = a.Unmap().String()
			}
			if hp := pm.Binding.HostPort; hp != "" {
				lo, hi, err := nat.ParsePortRangeToInt(hp)
				if err != nil {
					return nil, fmt.Errorf("invalid publish spec %q: host port %q: %w", spec, hp, err)
				}
				m.HostPort = uint16(lo)
				if hi != lo {
					m.HostPortEnd = uint16(hi)
				}
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// PublishAll is -P: every exposed port ("80/tcp", "53/udp", "8000-8002",
// the keys of an image's ExposedPorts plus --expose) not already published
// by an explicit mapping gets a free host port.
func PublishAll(explicit []PortMapping, exposed []string) ([]PortMapping, error) {
	out := append([]PortMapping(nil), explicit...)
	have := map[string]bool{}
	for _, p := range explicit {
		have[p.ContainerPortKey()] = true
	}
	keys := append([]string(nil), exposed...)
	sort.Strings(keys)
	for _, k := range keys {
		proto, ports := nat.SplitProtoPort(k)
		if ports == "" {
			return nil, fmt.Errorf("invalid exposed port %q", k)
		}
		lo, hi, err := nat.ParsePortRangeToInt(ports)
		if err != nil {
			return nil, fmt.Errorf("invalid exposed port %q: %w", k, err)
		}
		proto = strings.ToLower(proto)
		for p := lo; p <= hi; p++ {
			m := PortMapping{ContainerPort: uint16(p), Protocol: proto}
			if have[m.ContainerPortKey()] {
				continue
			}
			have[m.ContainerPortKey()] = true
			out = append(out, m)
		}
	}
	return out, nil
}

// FormatPorts renders mappings the way docker ps does, joining consecutive
// ports into ranges: "0.0.0.0:8080-8081->80-81/tcp, 0.0.0.0:53->53/udp".
func FormatPorts(ports []PortMapping) string {
	ps := append([]PortMapping(nil), ports...)
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].HostIP != ps[j].HostIP {
			return ps[i].HostIP < ps[j].HostIP
		}
		if ps[i].Protocol != ps[j].Protocol {
			return ps[i].Protocol < ps[j].Protocol
		}
		return ps[i].ContainerPort < ps[j].ContainerPort
	})
	var parts []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1].HostIP == ps[i].HostIP && ps[j+1].Protocol == ps[i].Protocol &&
			ps[j+1].ContainerPort == ps[j].ContainerPort+1 && ps[j+1].HostPort == ps[j].HostPort+1 {
			j++
		}
		ip := ps[i].HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		if j == i {
			parts = append(parts, ps[i].String())
		} else {
			parts = append(parts, fmt.Sprintf("%s->%d-%d/%s",
				net.JoinHostPort(ip, fmt.Sprintf("%d-%d", ps[i].HostPort, ps[j].HostPort)),
				ps[i].ContainerPort, ps[j].ContainerPort, ps[i].Protocol))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// PortLines answers `nook port CONTAINER [PRIVATE_PORT[/PROTO]]`: one
// "80/tcp -> 0.0.0.0:8080" line per mapping (with a filter, only the host
// side, as docker prints), and an error when the filter matches nothing.
func PortLines(ports []PortMapping, filter string) ([]string, error) {
	var want string
	if filter != "" {
		proto, p := nat.SplitProtoPort(filter)
		n, err := nat.ParsePort(p)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("invalid port %q", filter)
		}
		want = fmt.Sprintf("%d/%s", n, strings.ToLower(proto))
	}
	ps := append([]PortMapping(nil), ports...)
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].ContainerPort != ps[j].ContainerPort {
			return ps[i].ContainerPort < ps[j].ContainerPort
		}
		return ps[i].Protocol < ps[j].Protocol
	})
	var out []string
	for _, p := range ps {
		ip := p.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		host := net.JoinHostPort(ip, strconv.Itoa(int(p.HostPort)))
		switch {
		case want == "":
			out = append(out, p.ContainerPortKey()+" -> "+host)
		case want == p.ContainerPortKey():
			out = append(out, host)
		}
	}
	if want != "" && len(out) == 0 {
		return nil, fmt.Errorf("no public port '%s' published", want)
	}
	return out, nil
}
