package network

import (
	"fmt"
	"net"
	"net/netip"
	"os"
)

// hostContainersInternal is podman's name for the host, added (as podman
// does) whenever the host's address is known.
const hostContainersInternal = "host.containers.internal"

// hostGateway is the address --add-host NAME:host-gateway stands for.
func (m *Manager) hostGateway(first *Network) string {
	if m.hostGW != "" {
		return m.hostGW
	}
	if !m.rootless {
		if first != nil {
			return first.Gateway
		}
		return ""
	}
	// Rootless: slirp4netns reaches the host's own addresses (connections
	// leave from the host's namespace); its loopback is closed to
	// containers, so pick the first global IPv4 address.
	return firstHostIPv4()
}

func firstHostIPv4() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					ip = ip.Unmap()
					if ip.Is4() && ip.IsGlobalUnicast() {
						return ip.String()
					}
				}
			}
		}
	}
	return ""
}

// validateFiles checks --add-host and --dns before anything is created.
func validateFiles(o AttachOptions) error {
	if _, err := ParseAddHosts(o.AddHosts, "192.0.2.1"); err != nil {
		return err
	}
	_, err := BuildResolvConf(nil, ResolvSpec{DNS: o.DNS})
	return err
}

// extraHosts resolves --add-host and adds host.containers.internal.
func extraHosts(specs []string, gw string) ([]HostEntry, error) {
	extra, err := ParseAddHosts(specs, gw)
	if err != nil {
		return nil, err
	}
	if gw != "" {
		for _, e := range extra {
			for _, n := range e.Names {
				if n == hostContainersInternal {
					return extra, nil
				}
			}
		}
		extra = append(extra, HostEntry{IP: gw, Names: []string{hostContainersInternal}})
	}
	return extra, nil
}

// hostsSpec decides what the container's /etc/hosts is made of; reserve
// records it in the new leases, so that the file can be rewritten when
// peers come and go. A later attach (network connect) keeps the spec the
// container started with. Called with the lock held, after allocation.
func (m *Manager) hostsSpec(nets []*Network, o AttachOptions, atts []attachment) (*HostsSpec, error) {
	var first *Network
	var prior *HostsSpec
	for _, n := range nets {
		if l := n.Leases[o.ContainerID]; l != nil {
			if l.Interface == "eth0" {
				first = n
			}
			if l.Hosts != nil && prior == nil {
				prior = l.Hosts
			}
		}
	}
	if first == nil {
		first = atts[0].net
	}
	if prior != nil && len(o.AddHosts) == 0 && o.HostsPath == "" {
		return prior, nil
	}
	extra, err := extraHosts(o.AddHosts, m.hostGateway(first))
	if err != nil {
		return nil, err
	}
	spec := &HostsSpec{Path: o.HostsPath, Hostname: o.Hostname, Domainname: o.Domainname, Name: o.Name, Extra: extra}
	if l := first.Leases[o.ContainerID]; l != nil {
		spec.SelfIP = l.IP
	}
	return spec, nil
}

// finish renders and writes the container's files and tells the peers
// about the container. Called with the lock held.
func (m *Manager) finish(nets []*Network, o AttachOptions, atts []attachment, res *Result) error {
	if len(atts) == 0 {
		return nil
	}
	spec := *atts[0].lease.Hosts
	onNets := map[string]bool{}
	for _, n := range nets {
		if n.Leases[o.ContainerID] != nil {
			onNets[n.ID] = true
		}
	}
	res.Hosts = BuildHosts(spec, peerEntries(nets, o.ContainerID, onNets))
	rs := ResolvSpec{DNS: o.DNS, Search: o.DNSSearch, Options: o.DNSOptions}
	if m.rootless {
		rs.Default = []string{SlirpDNS}
	}
	var err error
	if res.ResolvConf, err = BuildResolvConf(m.hostResolvConf(), rs); err != nil {
		return err
	}
	res.Hostname = BuildHostname(o.Hostname)
	fo := o
	fo.HostsPath = spec.Path // network connect: the file the container started with
	if err := writeFiles(fo, res); err != nil {
		return err
	}
	touched := map[string]bool{}
	for _, a := range atts {
		touched[a.net.ID] = true
	}
	m.refreshPeers(nets, touched, o.ContainerID)
	return nil
}

// writeFiles writes the files whose paths were given, in place: a file
// already bind-mounted into a container keeps its inode.
func writeFiles(o AttachOptions, res *Result) error {
	for _, f := range []struct {
		path string
		data []byte
	}{{o.HostsPath, res.Hosts}, {o.ResolvConfPath, res.ResolvConf}, {o.HostnamePath, res.Hostname}} {
		if f.path == "" {
			continue
		}
		if err := writeInPlace(f.path, f.data); err != nil {
			return err
		}
	}
	return nil
}

func writeInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// refreshPeers rewrites the hosts files of the live containers on the
// touched networks (except skip's), so that a container that joined or
// left shows up or disappears in its peers' /etc/hosts. Failures are
// warnings: a peer may be stopping. Called with the lock held.
func (m *Manager) refreshPeers(nets []*Network, touched map[string]bool, skip string) {
	done := map[string]bool{skip: true}
	for _, n := range nets {
		if !touched[n.ID] || n.Default() {
			continue
		}
		for id, l := range n.Leases {
			if done[id] || l.Hosts == nil || l.Hosts.Path == "" || !leaseAlive(l) {
				continue
			}
			done[id] = true
			on := map[string]bool{}
			for _, o := range nets {
				if o.Leases[id] != nil {
					on[o.ID] = true
				}
			}
			if err := writeInPlace(l.Hosts.Path, BuildHosts(*l.Hosts, peerEntries(nets, id, on))); err != nil {
				fmt.Fprintf(m.warn, "nook: warning: updating /etc/hosts of container %s: %v\n", displayLease(l), err)
			}
		}
	}
}

// hostMode is --network host: the container shares the caller's network
// (rootless: the user's own, not the holder's) and the host's files.
func (m *Manager) hostMode(o AttachOptions) (*Result, error) {
	res := &Result{Mode: ModeHost}
	hosts, err := os.ReadFile(m.hostsFile)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", m.hostsFile, err)
	}
	extra, err := ParseAddHosts(o.AddHosts, m.hostGateway(nil))
	if err != nil {
		return nil, err
	}
	if len(hosts) > 0 && hosts[len(hosts)-1] != '\n' {
		hosts = append(hosts, '\n')
	}
	res.Hosts = append(hosts, HostsLines(extra)...)
	host := m.hostResolvConf()
	if len(o.DNS)+len(o.DNSSearch)+len(o.DNSOptions) == 0 {
		res.ResolvConf = host
	} else if res.ResolvConf, err = BuildResolvConf(host, ResolvSpec{DNS: o.DNS, Search: o.DNSSearch, Options: o.DNSOptions, KeepLoopback: true}); err != nil {
		return nil, err
	}
	if o.Hostname == "" {
		if o.Hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("reading the host name: %w", err)
		}
	}
	res.Hostname = BuildHostname(o.Hostname)
	return res, writeFiles(o, res)
}

// noneMode is --network none: loopback only.
func (m *Manager) noneMode(o AttachOptions) (*Result, error) {
	if o.NetNSPath != "" {
		ns, err := openNS(o.NetNSPath)
		if err != nil {
			return nil, err
		}
		defer ns.Close()
		h, err := nlHandle(ns)
		if err != nil {
			return nil, err
		}
		defer h.Close()
		if err := loopbackUp(h); err != nil {
			return nil, err
		}
	}
	extra, err := ParseAddHosts(o.AddHosts, m.hostGateway(nil))
	if err != nil {
		return nil, err
	}
	res := &Result{Mode: ModeNone}
	res.Hosts = BuildHosts(HostsSpec{Hostname: o.Hostname, Domainname: o.Domainname, Extra: extra}, nil)
	if res.ResolvConf, err = BuildResolvConf(m.hostResolvConf(), ResolvSpec{DNS: o.DNS, Search: o.DNSSearch, Options: o.DNSOptions}); err != nil {
		return nil, err
	}
	res.Hostname = BuildHostname(o.Hostname)
	return res, writeFiles(o, res)
}
