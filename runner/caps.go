package runner

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/sys/capability"
)

// DefaultCaps is docker's default capability set.
var DefaultCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// AllCaps is every capability this build knows, as CAP_ names.
func AllCaps() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	sort.Strings(out)
	return out
}

// normalizeCap turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into
// "CAP_NET_ADMIN" and checks that it exists; "ALL" stays "ALL".
func normalizeCap(s string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if u == "ALL" {
		return u, nil
	}
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	for _, c := range AllCaps() {
		if c == u {
			return u, nil
		}
	}
	return "", fmt.Errorf("unknown capability %q", s)
}

// Capabilities applies docker's rules: start from the default set (all
// with privileged), drop --cap-drop, then add --cap-add; ALL in either
// list works as in docker.
func Capabilities(adds, drops []string, privileged bool) ([]string, error) {
	base := DefaultCaps
	if privileged {
		base = availableCaps()
	}
	set := map[string]bool{}
	for _, c := range base {
		set[c] = true
	}
	var add, drop []string
	for _, c := range adds {
		n, err := normalizeCap(c)
		if err != nil {
			return nil, fmt.Errorf("--cap-add: %w", err)
		}
		add = append(add, n)
	}
	for _, c := range drops {
		n, err := normalizeCap(c)
		if err != nil {
			return nil, fmt.Errorf("--cap-drop: %w", err)
		}
		drop = append(drop, n)
	}
	// docker's order (moby oci/caps.TweakCapabilities): ALL in --cap-add
	// means every capability but the dropped ones; ALL in --cap-drop means
	// only the added ones; otherwise drop from the base, then add.
	switch {
	case containsString(add, "ALL"):
		set = map[string]bool{}
		for _, c := range availableCaps() {
			if !containsString(drop, c) {
				set[c] = true
			}
		}
	case containsString(drop, "ALL"):
		set = map[string]bool{}
		for _, c := range add {
			set[c] = true
		}
	default:
		for _, c := range drop {
			delete(set, c)
		}
		for _, c := range add {
			set[c] = true
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}

// capValues maps CAP_ names to the library's values.
func capValues(names []string) ([]capability.Cap, error) {
	known := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		known["CAP_"+strings.ToUpper(c.String())] = c
	}
	var out []capability.Cap
	for _, n := range names {
		c, ok := known[n]
		if !ok {
			return nil, fmt.Errorf("unknown capability %q", n)
		}
		out = append(out, c)
	}
	return out, nil
}
