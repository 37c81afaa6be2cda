package network

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/nook-containers/nook/userns"
)

// Names of the predefined networks.
const (
	DefaultNetwork = "nook"   // the default bridge network
	DockerDefault  = "bridge" // docker's name for it, accepted as an alias
	ModeNone       = "none"   // loopback only
	ModeHost       = "host"   // the user's own network (no namespace of its own)
)

// Address plan. The default network gets a /16 (room for many single
// containers); user networks get /24s from the pool, in order, skipping any
// that overlap a route in the outer namespace or another network.
var (
	defaultSubnet = netip.MustParsePrefix("10.88.0.0/16")
	poolStart     = netip.MustParsePrefix("10.89.0.0/24")
	poolEnd       = netip.MustParseAddr("10.99.255.0") // last /24 handed out
)

const (
	defaultBridge = "nook0"
	bridgePrefix  = "nk-"   // user networks: nk-<first 12 hex of the ID>
	vethPrefix    = "nkv"   // host side of a container's veth pair
	rootlessMTU   = 65520   // slirp4netns's MTU: fewer, bigger packets to the port forwarder
	rootMTU       = 1500    // the host's links
	fileVersion   = 1       // of the JSON files
	lockName      = ".lock" // flock'd for every change
)

// Network is a named network as stored (one JSON file per network).
type Network struct {
	Version  int               `json:"version"`
	Name     string            `json:"name"`
	ID       string            `json:"id"`
	Driver   string            `json:"driver"`             // "bridge"
	Bridge   string            `json:"bridge"`             // interface in the outer namespace
	Subnet   string            `json:"subnet"`             // CIDR, e.g. 10.89.0.0/24
	Gateway  string            `json:"gateway"`            // the bridge's address
	IPRange  string            `json:"ip_range,omitempty"` // containers get addresses from here
	MTU      int               `json:"mtu,omitempty"`
	Internal bool              `json:"internal,omitempty"` // no outbound traffic
	Labels   map[string]string `json:"labels,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
	Created  time.Time         `json:"created"`
	// Last is the last address handed out: allocation goes round-robin
	// from there, so a freed address is not reused at once.
	Last string `json:"-"`
	// Leases are the attached containers, by container ID (kept in a
	// file of their own, see state.go).
	Leases map[string]*Lease `json:"-"`
}

// Default reports whether n is the predefined default network.
func (n *Network) Default() bool { return n.Name == DefaultNetwork }

// Lease is one container's endpoint on a network. It survives crashes: a
// lease whose network namespace is gone is stale and is freed by the next
// change to the network (see Manager.Reconcile).
type Lease struct {
	ContainerID string        `json:"container_id"`
	Name        string        `json:"name,omitempty"` // container name, resolvable by peers
	Aliases     []string      `json:"aliases,omitempty"`
	IP          string        `json:"ip"`
	MAC         string        `json:"mac"`
	Interface   string        `json:"interface"` // inside the container: eth0, eth1...
	HostVeth    string        `json:"host_veth"` // the pair's end on the bridge
	NetNS       string        `json:"netns"`     // the container's namespace, as given
	NetNSDev    uint64        `json:"netns_dev"` // identity of that namespace, so a
	NetNSIno    uint64        `json:"netns_ino"` // reused pid does not look alive
	Ports       []PortMapping `json:"ports,omitempty"`
	PortIDs     []int         `json:"port_ids,omitempty"` // the holder's port manager ids
	Hosts       *HostsSpec    `json:"hosts,omitempty"`    // set when nook keeps the container's /etc/hosts current
	Created     time.Time     `json:"created"`
}

// DefaultDir is where network definitions and leases live. They belong
// with the outer namespace, whose bridges they describe: as root, the
// host's (one directory); rootless, the holder's, and a user can have
// more than one holder (one per runtime directory: a login session with
// XDG_RUNTIME_DIR and a cron job without it each start their own). Two
// holders sharing one lease file would each see the other's containers as
// gone and free their leases and ports, so each runtime directory gets
// its own.
func DefaultDir(rootless bool) string {
	dir := filepath.Join(userns.DataDir(), "networks")
	if !rootless {
		return dir
	}
	h := sha256.Sum256([]byte(filepath.Clean(userns.RuntimeDir())))
	return filepath.Join(dir, "holder-"+hex.EncodeToString(h[:])[:12])
}

// Options configures a Manager. Zero values take the per-user defaults.
type Options struct {
	// Dir holds the network files: default userns.DataDir()/networks. It
	// belongs with the outer namespace (one per user, one for root), not
	// with a store: every container on a bridge must see the same leases.
	Dir string
	// OuterNetNS is the network namespace the bridges live in: rootless,
	// the holder's (userns.NetNSPath()); as root, "" = the caller's own,
	// i.e. the host's. Tests point it at a namespace of their own.
	OuterNetNS string
	// Rootless selects how ports are published and what DNS containers
	// get: through the holder's port manager and slirp4netns's resolver
	// (true), or with nftables DNAT in the outer namespace and the host's
	// resolvers (false). Nil means userns.Rootless().
	Rootless *bool
	// PortAPI is the holder's API socket (rootless only): default
	// userns.HolderDir()/api.sock.
	PortAPI string
	// ResolvConf is the host's resolver configuration: default
	// /etc/resolv.conf (or systemd-resolved's upstream file).
	ResolvConf string
	// HostsFile is the host's hosts file, copied for --network host:
	// default /etc/hosts.
	HostsFile string
	// HostGateway is what --add-host NAME:host-gateway means. Default:
	// rootless, the host's first non-loopback IPv4 address (slirp4netns
	// reaches it; the host's loopback is closed to containers); as root,
	// the gateway of the container's first network.
	HostGateway string
	// Warnings receives non-fatal messages (nil: discarded).
	Warnings io.Writer
}

// Manager owns the networks of one outer namespace. Every change happens
// under an exclusive flock on Dir/.lock and every file is replaced
// atomically, so concurrent invocations and a kill -9 at any point leave
// files the next invocation reads.
type Manager struct {
	dir        string
	outer      string
	rootless   bool
	portAPI    string
	resolvConf string
	hostsFile  string
	hostGW     string
	warn       io.Writer
}

// New returns a Manager for opts.
func New(opts Options) (*Manager, error) {
	m := &Manager{
		dir:        opts.Dir,
		outer:      opts.OuterNetNS,
		portAPI:    opts.PortAPI,
		resolvConf: opts.ResolvConf,
		hostsFile:  opts.HostsFile,
		hostGW:     opts.HostGateway,
		warn:       opts.Warnings,
	}
	if opts.Rootless != nil {
		m.rootless = *opts.Rootless
	} else {
		m.rootless = userns.Rootless()
	}
	if m.dir == "" {
		m.dir = DefaultDir(m.rootless)
	}
	if m.outer == "" && m.rootless {
		m.outer = userns.NetNSPath()
	}
	if m.rootless && m.outer != "" {
		outer := m.outer
		parkPath.CompareAndSwap(nil, &outer)
	}
	if m.portAPI == "" && m.rootless {
		m.portAPI = filepath.Join(userns.HolderDir(), "api.sock")
	}
	if m.hostsFile == "" {
		m.hostsFile = "/etc/hosts"
	}
	if m.warn == nil {
		m.warn = io.Discard
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating network directory %s: %w", m.dir, err)
	}
	return m, nil
}

// Rootless reports how m publishes ports (see Options.Rootless).
func (m *Manager) Rootless() bool { return m.rootless }

// Dir is where m keeps its files.
func (m *Manager) Dir() string { return m.dir }

// ErrNotFound is returned (wrapped) for an unknown network.
var ErrNotFound = errors.New("network not found")

// ErrInUse is returned (wrapped) when a network still has containers.
var ErrInUse = errors.New("network has active endpoints")

// NotFoundError names the network that does not exist.
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("network %s not found", e.Name) }
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ValidName reports whether name is acceptable for a network (docker's rule).
func ValidName(name string) error {
	if !nameRE.MatchString(name) || len(name) > 200 {
		return fmt.Errorf("invalid network name %q: names start with a letter or digit and contain only [a-zA-Z0-9_.-]", name)
	}
	switch name {
	case DefaultNetwork, DockerDefault, ModeNone, ModeHost:
		return fmt.Errorf("network name %q is predefined", name)
	}
	if strings.HasPrefix(name, "container:") {
		return fmt.Errorf("invalid network name %q", name)
	}
	return nil
}

func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// CreateOptions are `network create`'s.
type CreateOptions struct {
	Name     string
	Driver   string // "" or "bridge"
	Subnet   string // CIDR; "" picks the next free /24 of the pool
	Gateway  string // "" = first address of the subnet
	IPRange  string // CIDR inside Subnet
	MTU      int
	Internal bool
	Labels   map[string]string
	Options  map[string]string // driver options: com.docker.network.driver.mtu, ...bridge.name
	// IgnoreExisting makes creating an existing network a no-op (compose).
	IgnoreExisting bool
}

// networkFile is where a network's state lives.
func (m *Manager) networkFile(name string) string { return filepath.Join(m.dir, name+".json") }

// loadAll reads every network file. Unreadable files are reported as
// warnings and skipped, so one damaged file does not stop the others.
func (m *Manager) loadAll() ([]*Network, error) {
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", m.dir, err)
	}
	var out []*Network
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		n, err := readNetwork(filepath.Join(m.dir, name))
		if err != nil {
			if n == nil {
				fmt.Fprintf(m.warn, "nook: warning: skipping %s: %v\n", filepath.Join(m.dir, name), err)
				continue
			}
			fmt.Fprintf(m.warn, "nook: warning: network %s: %v\n", n.Name, err)
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// find resolves a name, docker's alias "bridge", a full ID or a unique ID
// prefix among nets.
func find(nets []*Network, ref string) (*Network, error) {
	if ref == DockerDefault {
		ref = DefaultNetwork
	}
	for _, n := range nets {
		if n.Name == ref || n.ID == ref {
			return n, nil
		}
	}
	var hits []*Network
	for _, n := range nets {
		if ref != "" && strings.HasPrefix(n.ID, ref) {
			hits = append(hits, n)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return nil, &NotFoundError{Name: ref}
	default:
		return nil, fmt.Errorf("network ID prefix %q is ambiguous: %d networks match", ref, len(hits))
	}
}

// ensureDefault adds the default network to nets (creating its file) when
// missing. Called with the lock held.
func (m *Manager) ensureDefault(nets []*Network) ([]*Network, error) {
	for _, n := range nets {
		if n.Default() {
			return nets, nil
		}
	}
	n := &Network{
		Version: fileVersion,
		Name:    DefaultNetwork,
		ID:      newID(),
		Driver:  "bridge",
		Bridge:  defaultBridge,
		Subnet:  defaultSubnet.String(),
		Gateway: defaultSubnet.Addr().Next().String(),
		MTU:     m.defaultMTU(),
		Created: time.Now().UTC(),
		Leases:  map[string]*Lease{},
	}
	if err := m.saveDef(n); err != nil {
		return nil, err
	}
	nets = append(nets, n)
	sort.Slice(nets, func(i, j int) bool { return nets[i].Name < nets[j].Name })
	return nets, nil
}

func (m *Manager) defaultMTU() int {
	if m.rootless {
		return rootlessMTU
	}
	return rootMTU
}

// List returns every network, the default one included.
func (m *Manager) List() ([]*Network, error) {
	var nets []*Network
	err := m.locked(func() error {
		var err error
		nets, err = m.loadAll()
		if err != nil {
			return err
		}
		nets, err = m.ensureDefault(nets)
		return err
	})
	return nets, err
}

// Get returns the network named (or identified by) ref.
func (m *Manager) Get(ref string) (*Network, error) {
	nets, err := m.List()
	if err != nil {
		return nil, err
	}
	return find(nets, ref)
}

// Create defines a network. Its bridge appears in the outer namespace when
// the first container attaches.
func (m *Manager) Create(opts CreateOptions) (*Network, error) {
	if err := ValidName(opts.Name); err != nil {
		return nil, err
	}
	if opts.Driver != "" && opts.Driver != "bridge" {
		return nil, fmt.Errorf("network driver %q is not supported: nook has the bridge driver", opts.Driver)
	}
	var created *Network
	err := m.locked(func() error {
		nets, err := m.loadAll()
		if err != nil {
			return err
		}
		if nets, err = m.ensureDefault(nets); err != nil {
			return err
		}
		for _, n := range nets {
			if n.Name == opts.Name {
				if opts.IgnoreExisting {
					created = n
					return nil
				}
				return fmt.Errorf("network with name %s already exists", opts.Name)
			}
		}
		n, err := m.plan(opts, nets)
		if err != nil {
			return err
		}
		if err := m.saveDef(n); err != nil {
			return err
		}
		created = n
		return nil
	})
	return created, err
}

// plan fills in a new network's addresses and bridge name.
func (m *Manager) plan(opts CreateOptions, nets []*Network) (*Network, error) {
	n := &Network{
		Version:  fileVersion,
		Name:     opts.Name,
		ID:       newID(),
		Driver:   "bridge",
		MTU:      opts.MTU,
		Internal: opts.Internal,
		Labels:   opts.Labels,
		Options:  opts.Options,
		Created:  time.Now().UTC(),
		Leases:   map[string]*Lease{},
	}
	n.Bridge = bridgePrefix + n.ID[:12]
	if v := opts.Options["com.docker.network.bridge.name"]; v != "" {
		if len(v) > 15 {
			return nil, fmt.Errorf("bridge name %q is longer than 15 characters", v)
		}
		n.Bridge = v
	}
	if v := opts.Options["com.docker.network.driver.mtu"]; v != "" && n.MTU == 0 {
		if _, err := fmt.Sscanf(v, "%d", &n.MTU); err != nil || n.MTU < 68 || n.MTU > 65535 {
			return nil, fmt.Errorf("invalid MTU %q: use 68-65535", v)
		}
	}
	if n.MTU == 0 {
		n.MTU = m.defaultMTU()
	}
	taken := m.takenPrefixes(nets)
	for _, o := range nets {
		if o.Bridge == n.Bridge {
			return nil, fmt.Errorf("bridge %s is already used by network %s", n.Bridge, o.Name)
		}
	}
	var subnet netip.Prefix
	if opts.Subnet != "" {
		p, err := netip.ParsePrefix(opts.Subnet)
		if err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("invalid subnet %q: give an IPv4 CIDR such as 10.90.0.0/24", opts.Subnet)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("invalid subnet %q: host bits set (did you mean %s?)", opts.Subnet, p.Masked())
		}
		if p.Bits() > 30 {
			return nil, fmt.Errorf("subnet %s is too small: use /30 or larger", p)
		}
		for _, t := range taken {
			if t.p.Overlaps(p) {
				return nil, fmt.Errorf("subnet %s overlaps %s (%s)", p, t.p, t.owner)
			}
		}
		subnet = p
	} else {
		p, err := nextFreeSubnet(taken)
		if err != nil {
			return nil, err
		}
		subnet = p
	}
	n.Subnet = subnet.String()
	gw := subnet.Addr().Next()
	if opts.Gateway != "" {
		a, err := netip.ParseAddr(opts.Gateway)
		if err != nil || !subnet.Contains(a) || a == subnet.Addr() || a == lastAddr(subnet) {
			return nil, fmt.Errorf("invalid gateway %q: it must be a host address in %s", opts.Gateway, subnet)
		}
		gw = a
	}
	n.Gateway = gw.String()
	if opts.IPRange != "" {
		r, err := netip.ParsePrefix(opts.IPRange)
		if err != nil || r.Masked() != r || !subnet.Contains(r.Addr()) || r.Bits() < subnet.Bits() {
			return nil, fmt.Errorf("invalid IP range %q: it must be a CIDR inside %s", opts.IPRange, subnet)
		}
		n.IPRange = r.String()
	}
	return n, nil
}

type takenPrefix struct {
	p     netip.Prefix
	owner string
}

// takenPrefixes are the subnets of every network plus the routes of the
// outer namespace (its own bridges excluded), so a new subnet does not
// shadow a host route.
func (m *Manager) takenPrefixes(nets []*Network) []takenPrefix {
	var out []takenPrefix
	ours := map[string]bool{}
	for _, n := range nets {
		if p, err := netip.ParsePrefix(n.Subnet); err == nil {
			out = append(out, takenPrefix{p, "network " + n.Name})
		}
		ours[n.Bridge] = true
	}
	routes, err := outerRoutes(m.outer)
	if err != nil {
		fmt.Fprintf(m.warn, "nook: warning: reading routes to avoid subnet clashes: %v\n", err)
	}
	for _, r := range routes {
		if !ours[r.dev] && r.p.Bits() > 0 {
			out = append(out, takenPrefix{r.p, "a route via " + r.dev})
		}
	}
	return out
}

func nextFreeSubnet(taken []takenPrefix) (netip.Prefix, error) {
	for a := poolStart.Addr(); ; {
		p := netip.PrefixFrom(a, poolStart.Bits())
		free := true
		for _, t := range taken {
			if t.p.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
		if a == poolEnd {
			break
		}
		b := a.As4()
		if b[2] == 255 {
			b[1]++
			b[2] = 0
		} else {
			b[2]++
		}
		a = netip.AddrFrom4(b)
	}
	return netip.Prefix{}, fmt.Errorf("no free subnet left in %s-%s/24: remove unused networks (nook network prune) or give --subnet", poolStart.Addr(), poolEnd)
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
