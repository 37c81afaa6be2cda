package network

import (
	"fmt"
	"time"
)

// Inspect is a network as `docker network inspect` shows it, so that
// --format templates written for docker work.
type Inspect struct {
	Name       string                     `json:"Name"`
	ID         string                     `json:"Id"`
	Created    time.Time                  `json:"Created"`
	Scope      string                     `json:"Scope"`
	Driver     string                     `json:"Driver"`
	EnableIPv6 bool                       `json:"EnableIPv6"`
	IPAM       IPAM                       `json:"IPAM"`
	Internal   bool                       `json:"Internal"`
	Attachable bool                       `json:"Attachable"`
	Ingress    bool                       `json:"Ingress"`
	ConfigFrom struct{ Network string }   `json:"ConfigFrom"`
	ConfigOnly bool                       `json:"ConfigOnly"`
	Containers map[string]InspectEndpoint `json:"Containers"`
	Options    map[string]string          `json:"Options"`
	Labels     map[string]string          `json:"Labels"`
}

// IPAM is docker's address management section.
type IPAM struct {
	Driver  string            `json:"Driver"`
	Options map[string]string `json:"Options"`
	Config  []IPAMConfig      `json:"Config"`
}

// IPAMConfig is one subnet.
type IPAMConfig struct {
	Subnet  string `json:"Subnet"`
	IPRange string `json:"IPRange,omitempty"`
	Gateway string `json:"Gateway"`
}

// InspectEndpoint is an attached container.
type InspectEndpoint struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// View renders n as docker's inspect output.
func (n *Network) View() Inspect {
	v := Inspect{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
		IPAM: IPAM{Driver: "default", Options: map[string]string{},
			Config: []IPAMConfig{{Subnet: n.Subnet, IPRange: n.IPRange, Gateway: n.Gateway}}},
		Internal:   n.Internal,
		Containers: map[string]InspectEndpoint{},
		Options:    map[string]string{"com.docker.network.bridge.name": n.Bridge},
		Labels:     map[string]string{},
	}
	if n.MTU != 0 {
		v.Options["com.docker.network.driver.mtu"] = fmt.Sprint(n.MTU)
	}
	for k, val := range n.Options {
		v.Options[k] = val
	}
	for k, val := range n.Labels {
		v.Labels[k] = val
	}
	for id, l := range n.Leases {
		v.Containers[id] = InspectEndpoint{
			Name:        l.Name,
			EndpointID:  l.HostVeth,
			MacAddress:  l.MAC,
			IPv4Address: fmt.Sprintf("%s/%d", l.IP, prefixLen(n)),
		}
	}
	return v
}
