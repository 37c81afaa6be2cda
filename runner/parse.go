package runner

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
)

// MountRequest is one -v, --mount or --tmpfs, parsed.
type MountRequest struct {
	Type     string // "bind", "volume" or "tmpfs"
	Source   string // host path (bind), volume name ("" = anonymous), unused for tmpfs
	Target   string // absolute path in the container
	ReadOnly bool
	// Options are extra mount options: propagation for binds, size and
	// mode for tmpfs.
	Options []string
	NoCopy  bool // volume-nocopy / nocopy: do not populate a new volume from the image
	// CreateSource is false for --mount binds (docker refuses a missing
	// source there); nook refuses a missing source for -v too.
}

var propagations = map[string]bool{"shared": true, "rshared": true, "slave": true, "rslave": true, "private": true, "rprivate": true}

// ParseVolume parses -v [SOURCE:]TARGET[:OPTIONS] with docker's rules: an
// absolute (or ./relative) SOURCE is a bind mount, another SOURCE a named
// volume, no SOURCE an anonymous volume. OPTIONS: ro, rw, z, Z (accepted
// and ignored: no SELinux here), nocopy, and propagation modes.
func ParseVolume(spec string) (MountRequest, error) {
	parts := strings.Split(spec, ":")
	var m MountRequest
	switch len(parts) {
	case 1:
		m = MountRequest{Type: "volume", Target: parts[0]}
	case 2:
		if isMountOptions(parts[1]) && !strings.HasPrefix(parts[1], "/") {
			m = MountRequest{Type: "volume", Target: parts[0]}
			if err := m.applyVolumeOptions(parts[1], spec); err != nil {
				return m, err
			}
		} else {
			m = MountRequest{Source: parts[0], Target: parts[1]}
		}
	case 3:
		m = MountRequest{Source: parts[0], Target: parts[1]}
		if err := m.applyVolumeOptions(parts[2], spec); err != nil {
			return m, err
		}
	default:
		return m, fmt.Errorf("invalid volume specification %q: want [SOURCE:]TARGET[:OPTIONS]", spec)
	}
	if m.Type == "" {
		if m.Source == "" {
			return m, fmt.Errorf("invalid volume specification %q: empty source", spec)
		}
		if strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, ".") {
			m.Type = "bind"
		} else {
			m.Type = "volume"
			if err := validVolumeName(m.Source); err != nil {
				return m, fmt.Errorf("invalid volume specification %q: %w", spec, err)
			}
		}
	}
	if err := checkTarget(m.Target); err != nil {
		return m, fmt.Errorf("invalid volume specification %q: %w", spec, err)
	}
	if m.Type != "volume" && m.NoCopy {
		return m, fmt.Errorf("invalid volume specification %q: nocopy applies to volumes only", spec)
	}
	return m, nil
}

func isMountOptions(s string) bool {
	for _, o := range strings.Split(s, ",") {
		switch {
		case o == "ro", o == "rw", o == "z", o == "Z", o == "nocopy", propagations[o]:
		default:
			return false
		}
	}
	return true
}

func (m *MountRequest) applyVolumeOptions(opts, spec string) error {
	for _, o := range strings.Split(opts, ",") {
		switch {
		case o == "ro":
			m.ReadOnly = true
		case o == "rw":
			m.ReadOnly = false
		case o == "z", o == "Z":
			// SELinux relabelling: nothing to do without SELinux.
		case o == "nocopy":
			m.NoCopy = true
		case propagations[o]:
			m.Options = append(m.Options, o)
		default:
			return fmt.Errorf("invalid volume specification %q: unknown option %q", spec, o)
		}
	}
	return nil
}

func validVolumeName(n string) error {
	if n == "" {
		return errors.New("empty volume name")
	}
	for i, r := range n {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '_' || r == '.' || r == '-')
		if !ok {
			return fmt.Errorf("%q includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", n)
		}
	}
	return nil
}

// ValidVolumeName checks a named volume's name with docker's rule.
func ValidVolumeName(n string) error { return validVolumeName(n) }

func checkTarget(t string) error {
	if t == "" {
		return errors.New("empty target path")
	}
	if !path.IsAbs(t) {
		return fmt.Errorf("target path %q is not absolute", t)
	}
	if path.Clean(t) == "/" {
		return errors.New("cannot mount over /")
	}
	return nil
}

// ParseMount parses --mount type=bind|volume|tmpfs,source=...,target=...
// (a CSV line, as docker reads it).
func ParseMount(spec string) (MountRequest, error) {
	r := csv.NewReader(strings.NewReader(spec))
	fields, err := r.Read()
	if err != nil {
		return MountRequest{}, fmt.Errorf("invalid --mount %q: %w", spec, err)
	}
	m := MountRequest{Type: "volume"}
	var tmpfsSize, tmpfsMode string
	for _, f := range fields {
		k, v, hasValue := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		boolVal := func() (bool, error) {
			if !hasValue {
				return true, nil
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, fmt.Errorf("invalid --mount %q: %s=%s is not a boolean", spec, k, v)
			}
			return b, nil
		}
		switch k {
		case "type":
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "dst", "destination":
			m.Target = v
		case "readonly", "ro":
			if m.ReadOnly, err = boolVal(); err != nil {
				return m, err
			}
		case "bind-propagation":
			if !propagations[v] {
				return m, fmt.Errorf("invalid --mount %q: unknown bind-propagation %q", spec, v)
			}
			m.Options = append(m.Options, v)
		case "volume-nocopy":
			if m.NoCopy, err = boolVal(); err != nil {
				return m, err
			}
		case "tmpfs-size":
			sz, err := units.RAMInBytes(v)
			if err != nil {
				return m, fmt.Errorf("invalid --mount %q: tmpfs-size: %w", spec, err)
			}
			tmpfsSize = strconv.FormatInt(sz, 10)
		case "tmpfs-mode":
			mode, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return m, fmt.Errorf("invalid --mount %q: tmpfs-mode %q is not octal", spec, v)
			}
			tmpfsMode = fmt.Sprintf("%o", mode)
		case "consistency", "bind-nonrecursive", "volume-driver", "volume-label", "volume-opt":
			// Accepted for compatibility; nothing to do on a single host.
		default:
			return m, fmt.Errorf("invalid --mount %q: unknown field %q", spec, k)
		}
	}
	switch m.Type {
	case "bind":
		if m.Source == "" {
			return m, fmt.Errorf("invalid --mount %q: a bind mount needs source=", spec)
		}
	case "volume":
		if m.Source != "" {
			if err := validVolumeName(m.Source); err != nil {
				return m, fmt.Errorf("invalid --mount %q: %w", spec, err)
			}
		}
	case "tmpfs":
		if m.Source != "" {
			return m, fmt.Errorf("invalid --mount %q: tmpfs takes no source", spec)
		}
		if tmpfsSize != "" {
			m.Options = append(m.Options, "size="+tmpfsSize)
		}
		if tmpfsMode != "" {
			m.Options = append(m.Options, "mode="+tmpfsMode)
		}
	default:
		return m, fmt.Errorf("invalid --mount %q: unknown type %q (use bind, volume or tmpfs)", spec, m.Type)
	}
	if (tmpfsSize != "" || tmpfsMode != "") && m.Type != "tmpfs" {
		return m, fmt.Errorf("invalid --mount %q: tmpfs options need type=tmpfs", spec)
	}
	if err := checkTarget(m.Target); err != nil {
		return m, fmt.Errorf("invalid --mount %q: %w", spec, err)
	}
	return m, nil
}

// ParseTmpfs parses --tmpfs PATH[:OPTIONS] (options as mount(8) takes them).
func ParseTmpfs(spec string) (MountRequest, error) {
	target, opts, _ := strings.Cut(spec, ":")
	m := MountRequest{Type: "tmpfs", Target: target}
	if err := checkTarget(target); err != nil {
		return m, fmt.Errorf("invalid --tmpfs %q: %w", spec, err)
	}
	if opts != "" {
		for _, o := range strings.Split(opts, ",") {
			if o == "ro" {
				m.ReadOnly = true
				continue
			}
			m.Options = append(m.Options, o)
		}
	}
	return m, nil
}

// ParseEnvFile reads docker's --env-file format: one VAR=VALUE per line,
// lines starting with # ignored, a bare VAR takes its value from lookup
// (and is left out when lookup has none). Values are not unquoted.
func ParseEnvFile(r io.Reader, name string, lookup func(string) (string, bool)) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		k, v, hasValue := strings.Cut(trimmed, "=")
		if k == "" {
			return nil, fmt.Errorf("%s line %d: no variable name in %q", name, n, line)
		}
		if strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s line %d: variable %q contains whitespace", name, n, k)
		}
		if hasValue {
			out = append(out, k+"="+v)
			continue
		}
		if val, ok := lookup(k); ok {
			out = append(out, k+"="+val)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return out, nil
}

// ParseEnv resolves one -e value: VAR=VALUE as is, a bare VAR from lookup
// (left out when unset).
func ParseEnv(e string, lookup func(string) (string, bool)) (string, bool, error) {
	k, _, hasValue := strings.Cut(e, "=")
	if k == "" {
		return "", false, fmt.Errorf("invalid environment variable %q: no name", e)
	}
	if hasValue {
		return e, true, nil
	}
	v, ok := lookup(k)
	if !ok {
		return "", false, nil
	}
	return k + "=" + v, true, nil
}
