package userns

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"

	"go.podman.io/storage/pkg/idtools"
)

// IDRange is one line of /proc/PID/uid_map: Size ids starting at Inside map
// to Size ids starting at Outside.
type IDRange struct {
	Inside, Outside, Size int
}

// Mapping is what the user's namespace maps, and why it may be degraded.
type Mapping struct {
	UIDs, GIDs []IDRange
	// Single is true when only the user's own id is mapped: every file in
	// an image then belongs to root in the container.
	Single bool
	// Advice explains a single mapping: the exact /etc/subuid line to add,
	// or the package that provides newuidmap.
	Advice string
}

// SubIDs returns the user's /etc/subuid and /etc/subgid ranges as the
// namespace will map them (container id 1 on), or an error saying what the
// administrator should add.
func SubIDs(username string) (uids, gids []IDRange, err error) {
	m, err := idtools.NewIDMappings(username, username)
	if err != nil {
		return nil, nil, err
	}
	conv := func(in []idtools.IDMap) []IDRange {
		var out []IDRange
		next := 1
		for _, r := range in {
			out = append(out, IDRange{Inside: next, Outside: r.HostID, Size: r.Size})
			next += r.Size
		}
		return out
	}
	return conv(m.UIDs()), conv(m.GIDs()), nil
}

// PlanMapping decides the mapping a new holder will get, without side
// effects beyond reading /etc/subuid, /etc/subgid and PATH.
func PlanMapping() Mapping {
	uid, gid := HostUID(), HostGID()
	m := Mapping{
		UIDs: []IDRange{{0, uid, 1}},
		GIDs: []IDRange{{0, gid, 1}},
	}
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		m.Single = true
		m.Advice = "newuidmap and newgidmap were not found: install them (Debian/Ubuntu: apt-get install uidmap; Fedora: dnf install shadow-utils) to map more than one id; see docs/rootless.md"
		return m
	}
	uids, gids, err := SubIDs(name)
	if err != nil || len(uids) == 0 || len(gids) == 0 {
		m.Single = true
		start := freeSubIDStart("/etc/subuid")
		m.Advice = fmt.Sprintf("no subordinate id range for user %q: images with files owned by other users are imported with every file owned by root. "+
			"An administrator can add the line %q to both /etc/subuid and /etc/subgid (for example: usermod --add-subuids %d-%d --add-subgids %d-%d %s); see docs/rootless.md",
			name, fmt.Sprintf("%s:%d:65536", name, start), start, start+65535, start, start+65535, name)
		return m
	}
	m.UIDs = append(m.UIDs, uids...)
	m.GIDs = append(m.GIDs, gids...)
	return m
}

// freeSubIDStart proposes the start of a 65536-id range that does not
// overlap any range already in the file (the same rule as useradd).
func freeSubIDStart(path string) int {
	start := 100000
	f, err := os.Open(path)
	if err != nil {
		return start
	}
	defer f.Close()
	for _, r := range readSubIDFile(f) {
		if end := r.Outside + r.Size; end > start {
			start = end
		}
	}
	return start
}

// readSubIDFile reads the ranges of a subuid-format file, whoever they
// belong to (only used to find a free range for advice).
func readSubIDFile(r io.Reader) []IDRange {
	var out []IDRange
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := strings.Split(strings.TrimSpace(s.Text()), ":")
		if len(f) != 3 {
			continue
		}
		a, err1 := strconv.Atoi(f[1])
		b, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil {
			out = append(out, IDRange{Outside: a, Size: b})
		}
	}
	return out
}

// ReadIDMap reads /proc/self/uid_map or gid_map.
func ReadIDMap(path string) ([]IDRange, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []IDRange
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		var r IDRange
		r.Inside, _ = strconv.Atoi(f[0])
		r.Outside, _ = strconv.Atoi(f[1])
		r.Size, _ = strconv.Atoi(f[2])
		out = append(out, r)
	}
	return out, nil
}
