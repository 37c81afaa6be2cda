package pusher

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nook-containers/nook/userns"
)

// RegistriesConfig is the per-user registry configuration: a TOML file in
// the format of containers' registries.conf (version 2), restricted to the
// keys nook uses. docs/registries.md describes it.
type RegistriesConfig struct {
	// UnqualifiedSearchRegistries are tried in order for a short name
	// ("busybox"). Nil (the key absent) means ["docker.io"], as docker
	// does; an empty list refuses short names.
	UnqualifiedSearchRegistries *[]string `toml:"unqualified-search-registries"`
	// Registries rewrite, mirror, mark insecure or block references by
	// prefix; the longest matching prefix wins.
	Registries []Registry `toml:"registry"`
	// Aliases map a short name to a fully qualified one
	// (busybox = "docker.io/library/busybox").
	Aliases map[string]string `toml:"aliases"`

	path string // the file it was read from ("" for the built-in default)
}

// Registry is one [[registry]] table.
type Registry struct {
	// Prefix selects the references this entry applies to:
	// "host[:port][/namespace...]" or "*.domain". Empty: Location.
	Prefix string `toml:"prefix"`
	// Location replaces Prefix when pulling or pushing. Empty: Prefix.
	Location string `toml:"location"`
	// Insecure allows plain HTTP and unverified TLS certificates.
	Insecure bool `toml:"insecure"`
	// Blocked refuses every pull and push.
	Blocked bool `toml:"blocked"`
	// MirrorByDigestOnly uses the mirrors only for pulls by digest.
	MirrorByDigestOnly bool `toml:"mirror-by-digest-only"`
	// Mirrors are tried in order before Location when pulling.
	Mirrors []Mirror `toml:"mirror"`
}

// Mirror is one [[registry.mirror]] table.
type Mirror struct {
	Location string `toml:"location"`
	Insecure bool   `toml:"insecure"`
	// PullFromMirror is "all" (default), "digest-only" or "tag-only".
	PullFromMirror string `toml:"pull-from-mirror"`
}

// RegistriesConfigEnv names a registries.conf to use instead of the one in
// the user's configuration directory (tests point it at a private file).
const RegistriesConfigEnv = "NOOK_REGISTRIES_CONF"

// DefaultRegistriesFile is where the per-user configuration lives:
// $NOOK_REGISTRIES_CONF, else registries.conf in the user's nook
// configuration directory (~/.config/nook; /etc/nook for root).
func DefaultRegistriesFile() string {
	if p := os.Getenv(RegistriesConfigEnv); p != "" {
		return p
	}
	return filepath.Join(userns.ConfigDir(), "registries.conf")
}

// LoadRegistriesConfig reads path ("" for DefaultRegistriesFile). A missing
// file is the default configuration; unknown keys are an error naming the
// key, so that a typo does not silently change where images come from.
func LoadRegistriesConfig(path string) (*RegistriesConfig, error) {
	if path == "" {
		path = DefaultRegistriesFile()
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &RegistriesConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading registry configuration: %w", err)
	}
	return ParseRegistriesConfig(path, data)
}

// ParseRegistriesConfig decodes and checks a registries.conf document.
func ParseRegistriesConfig(path string, data []byte) (*RegistriesConfig, error) {
	c := &RegistriesConfig{path: path}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var keys []string
		for _, k := range und {
			keys = append(keys, k.String())
		}
		return nil, fmt.Errorf("parsing %s: unknown key %s (see docs/registries.md)", path, strings.Join(keys, ", "))
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	return c, nil
}

func (c *RegistriesConfig) check() error {
	if c.UnqualifiedSearchRegistries != nil {
		for _, r := range *c.UnqualifiedSearchRegistries {
			if _, err := name.NewRegistry(r); err != nil || strings.Contains(r, "/") {
				return fmt.Errorf("unqualified-search-registries: %q is not a registry host[:port]", r)
			}
		}
	}
	seen := map[string]bool{}
	for i := range c.Registries {
		r := &c.Registries[i]
		if r.Prefix == "" {
			r.Prefix = r.Location
		}
		if r.Prefix == "" {
			return fmt.Errorf("[[registry]] number %d has neither prefix nor location", i+1)
		}
		if seen[r.Prefix] {
			return fmt.Errorf("[[registry]] prefix %q appears twice", r.Prefix)
		}
		seen[r.Prefix] = true
		if strings.HasPrefix(r.Prefix, "*.") {
			if r.Location != "" {
				return fmt.Errorf("[[registry]] %q: a wildcard prefix takes no location", r.Prefix)
			}
			if strings.Contains(r.Prefix, "/") {
				return fmt.Errorf("[[registry]] %q: a wildcard prefix is a domain only", r.Prefix)
			}
		} else if err := checkLocation(r.Prefix); err != nil {
			return fmt.Errorf("[[registry]] prefix: %w", err)
		}
		if r.Location != "" {
			if err := checkLocation(r.Location); err != nil {
				return fmt.Errorf("[[registry]] %q location: %w", r.Prefix, err)
			}
		}
		for _, m := range r.Mirrors {
			if err := checkLocation(m.Location); err != nil {
				return fmt.Errorf("[[registry.mirror]] of %q: %w", r.Prefix, err)
			}
			switch m.PullFromMirror {
			case "", "all", "digest-only", "tag-only":
			default:
				return fmt.Errorf("[[registry.mirror]] %q: pull-from-mirror must be all, digest-only or tag-only, not %q", m.Location, m.PullFromMirror)
			}
		}
	}
	for k, v := range c.Aliases {
		if strings.ContainsAny(k, ":@") || hasDomain(k) {
			return fmt.Errorf("[aliases] %q: an alias is a short name without tag or registry", k)
		}
		if _, err := reference.ParseNormalizedNamed(v); err != nil || !hasDomain(v) {
			return fmt.Errorf("[aliases] %q: %q is not a fully qualified name", k, v)
		}
	}
	return nil
}

// checkLocation accepts "host[:port][/path]".
func checkLocation(loc string) error {
	if loc == "" {
		return errors.New("empty location")
	}
	host, _, _ := strings.Cut(loc, "/")
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil {
		return fmt.Errorf("%q: %v", loc, err)
	}
	if strings.Contains(loc, "/") {
		if _, err := name.NewRepository(loc, name.StrictValidation); err != nil {
			return fmt.Errorf("%q: %v", loc, err)
		}
	}
	return nil
}

// Path is the file the configuration came from ("" for the default).
func (c *RegistriesConfig) Path() string { return c.path }

// SearchRegistries are the registries tried for a short name.
func (c *RegistriesConfig) SearchRegistries() []string {
	if c.UnqualifiedSearchRegistries == nil {
		return []string{"docker.io"}
	}
	return *c.UnqualifiedSearchRegistries
}

// hasDomain reports whether a reference names its registry: its first
// component has a dot or a port, or is localhost (docker's rule).
func hasDomain(s string) bool {
	first, _, ok := strings.Cut(s, "/")
	if !ok {
		return false
	}
	return strings.ContainsAny(first, ".:") || first == "localhost"
}

// match finds the [[registry]] entry with the longest prefix matching the
// repository name full ("docker.io/library/busybox").
func (c *RegistriesConfig) match(full string) *Registry {
	var best *Registry
	bestLen := -1
	host, _, _ := strings.Cut(full, "/")
	for i := range c.Registries {
		r := &c.Registries[i]
		p := r.Prefix
		ok := false
		if strings.HasPrefix(p, "*.") {
			ok = strings.HasSuffix(host, p[1:])
		} else {
			ok = full == p || strings.HasPrefix(full, p+"/")
		}
		if ok && len(p) > bestLen {
			best, bestLen = r, len(p)
		}
	}
	return best
}

// endpoint is one place to fetch a reference from.
type endpoint struct {
	ref      name.Reference // where to go, ggcr form
	insecure bool
	mirror   bool
}

func (e endpoint) String() string { return e.ref.String() }

// candidate is one fully qualified name a user's reference may mean, with
// the places to pull it from, best first.
type candidate struct {
	named     reference.Named // the name recorded in the store
	endpoints []endpoint
}

// candidates resolves what a user typed into the names it may mean: one
// for a qualified name, one per search registry for a short name.
func (c *RegistriesConfig) candidates(input string, insecureAll bool) ([]candidate, error) {
	if input == "" {
		return nil, errors.New("no image name given")
	}
	var names []reference.Named
	if !hasDomain(input) {
		repo, suffix := splitSuffix(input)
		if alias, ok := c.Aliases[repo]; ok {
			input = alias + suffix
		}
	}
	if hasDomain(input) {
		n, err := reference.ParseNormalizedNamed(input)
		if err != nil {
			return nil, fmt.Errorf("invalid reference format %q: %w", input, err)
		}
		names = append(names, reference.TagNameOnly(n))
	} else {
		if _, err := reference.ParseNormalizedNamed(input); err != nil {
			return nil, fmt.Errorf("invalid reference format %q: %w", input, err)
		}
		search := c.SearchRegistries()
		if len(search) == 0 {
			return nil, fmt.Errorf("short name %q: no unqualified-search-registries in %s: use a fully qualified name", input, c.path)
		}
		for _, r := range search {
			n, err := reference.ParseNormalizedNamed(r + "/" + input)
			if err != nil {
				return nil, fmt.Errorf("invalid reference format %q: %w", r+"/"+input, err)
			}
			names = append(names, reference.TagNameOnly(n))
		}
	}
	var out []candidate
	for _, n := range names {
		eps, err := c.endpoints(n, insecureAll, true)
		if err != nil {
			return nil, err
		}
		out = append(out, candidate{named: n, endpoints: eps})
	}
	return out, nil
}

// splitSuffix cuts ":tag" or "@digest" off a short name.
func splitSuffix(s string) (string, string) {
	if i := strings.IndexByte(s, '@'); i >= 0 {
		return s[:i], s[i:]
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i:], "/") {
		return s[:i], s[i:]
	}
	return s, ""
}

// endpoints lists where a fully qualified name is fetched from (mirrors
// first when withMirrors) or pushed to.
func (c *RegistriesConfig) endpoints(n reference.Named, insecureAll, withMirrors bool) ([]endpoint, error) {
	full := n.Name()
	suffix := strings.TrimPrefix(n.String(), full)
	_, byDigest := n.(reference.Digested)
	r := c.match(full)
	if r == nil {
		ep, err := newEndpoint(full, suffix, insecureAll, false)
		if err != nil {
			return nil, err
		}
		return []endpoint{ep}, nil
	}
	if r.Blocked {
		return nil, fmt.Errorf("registry %s is blocked by %s", r.Prefix, c.path)
	}
	rest := full
	loc := full
	if !strings.HasPrefix(r.Prefix, "*.") {
		rest = strings.TrimPrefix(full, r.Prefix)
		loc = r.Prefix + rest
		if r.Location != "" {
			loc = r.Location + rest
		}
	}
	var eps []endpoint
	if withMirrors && (!r.MirrorByDigestOnly || byDigest) {
		for _, m := range r.Mirrors {
			switch {
			case m.PullFromMirror == "digest-only" && !byDigest:
				continue
			case m.PullFromMirror == "tag-only" && byDigest:
				continue
			}
			mloc := m.Location + rest
			if strings.HasPrefix(r.Prefix, "*.") {
				mloc = m.Location + "/" + full
			}
			ep, err := newEndpoint(mloc, suffix, insecureAll || m.Insecure, true)
			if err != nil {
				return nil, err
			}
			eps = append(eps, ep)
		}
	}
	ep, err := newEndpoint(loc, suffix, insecureAll || r.Insecure, false)
	if err != nil {
		return nil, err
	}
	return append(eps, ep), nil
}

func newEndpoint(repo, suffix string, insecure, mirror bool) (endpoint, error) {
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(repo+suffix, opts...)
	if err != nil {
		return endpoint{}, fmt.Errorf("invalid reference %q: %w", repo+suffix, err)
	}
	return endpoint{ref: ref, insecure: insecure, mirror: mirror}, nil
}

// insecureRegistry reports whether a registry host is marked insecure.
func (c *RegistriesConfig) insecureRegistry(host string) bool {
	var hosts []string
	for _, r := range c.Registries {
		if r.Insecure {
			hosts = append(hosts, r.Prefix, r.Location)
		}
		for _, m := range r.Mirrors {
			if m.Insecure {
				hosts = append(hosts, m.Location)
			}
		}
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		hh, _, _ := strings.Cut(h, "/")
		if hh == host || (strings.HasPrefix(hh, "*.") && strings.HasSuffix(host, hh[1:])) {
			return true
		}
	}
	return false
}
