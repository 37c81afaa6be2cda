package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/nook-containers/nook/imagecfg"
)

// DefaultShmSize is docker's default /dev/shm size.
const DefaultShmSize = 64 << 20

// SpecInput is everything Spec needs.
type SpecInput struct {
	ID      string
	Image   v1.Config // the image's configuration
	Rootfs  string    // the container's root filesystem (its /etc/passwd and /etc/group are read)
	Options *Options
	// Mounts are the resolved -v, --mount and --tmpfs mounts (binds with
	// absolute host sources), see ResolveMounts.
	Mounts []specs.Mount
	// Rootless: the container runs in a user namespace without real root.
	Rootless bool
	// HostHostname is the host's name, used with --network host.
	HostHostname string
	// EtcFiles are host files bind-mounted at /etc/hosts, /etc/hostname and
	// /etc/resolv.conf (keys are those paths); empty: none.
	EtcFiles map[string]string
	// Cgroup is the resource controller the limits go to; nil when no limit
	// was asked for.
	Cgroup *CgroupPlan
}

// UserError is a mistake in what the user asked for (bad flag value,
// unknown user, no command): nook exits 125 with its message.
type UserError struct{ Err error }

func (e *UserError) Error() string { return e.Err.Error() }
func (e *UserError) Unwrap() error { return e.Err }

func userErr(format string, a ...any) error { return &UserError{Err: fmt.Errorf(format, a...)} }

// Spec builds the OCI runtime-spec document for a container, with docker's
// rules. It reads nothing but the image's passwd and group files.
func Spec(in SpecInput) (*specs.Spec, error) {
	o := in.Options
	if o == nil {
		o = &Options{}
	}
	img := in.Image
	args, err := Command(img, o)
	if err != nil {
		return nil, err
	}
	hostname := o.Hostname
	if hostname == "" {
		hostname = in.ID
		if len(hostname) > 12 {
			hostname = hostname[:12]
		}
		if o.Network == "host" && in.HostHostname != "" {
			hostname = in.HostHostname
		}
	}
	cwd := img.WorkingDir
	if o.WorkingDir != "" {
		cwd = o.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, userErr("the working directory %q is invalid: it needs to be an absolute path", cwd)
	}
	userSpec := img.User
	if o.User != "" {
		userSpec = o.User
	}
	eu, err := ResolveUser(in.Rootfs, userSpec, o.GroupAdd)
	if err != nil {
		return nil, err
	}
	env := Env(img.Env, o.Env, hostname, o.Tty, eu.Home)

	caps, err := Capabilities(o.CapAdd, o.CapDrop, o.Privileged)
	if err != nil {
		return nil, &UserError{Err: err}
	}
	sec, err := securityOptions(o.SecurityOpt)
	if err != nil {
		return nil, err
	}
	rlimits, err := Rlimits(o.Ulimits)
	if err != nil {
		return nil, err
	}

	s := &specs.Spec{
		Version:    specs.Version,
		Hostname:   hostname,
		Domainname: o.Domainname,
		Root:       &specs.Root{Path: in.Rootfs, Readonly: o.ReadOnly},
		Process: &specs.Process{
			Terminal: o.Tty,
			User: specs.User{
				UID:            uint32(eu.Uid),
				GID:            uint32(eu.Gid),
				AdditionalGids: intsToUint32(eu.Sgids),
			},
			Args: args,
			Env:  env,
			Cwd:  path.Clean(cwd),
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			Rlimits:         rlimits,
			NoNewPrivileges: sec.noNewPrivs,
		},
		Mounts:      Mounts(in, o),
		Annotations: map[string]string{},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			Devices: defaultDevices(),
		},
	}
	if o.Network != "host" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if !o.Privileged {
		s.Linux.MaskedPaths = slicesClone(maskedPaths)
		s.Linux.ReadonlyPaths = slicesClone(readonlyPaths)
		s.Linux.Seccomp, err = Seccomp(SeccompOptions{
			Unconfined:          sec.seccompUnconfined,
			ProfilePath:         sec.seccompProfile,
			RestrictDeviceNodes: !in.Rootless,
		}, caps)
		if err != nil {
			return nil, &UserError{Err: err}
		}
	}
	if o.Init {
		s.Annotations[annotationInit] = "true"
	}
	if in.Cgroup != nil {
		s.Linux.Resources = in.Cgroup.Resources()
		s.Linux.CgroupsPath = in.Cgroup.Path
	}
	return s, nil
}

// Command is the container's argv with docker's rules: --entrypoint
// replaces the image's ENTRYPOINT and drops its CMD; arguments replace CMD.
func Command(img v1.Config, o *Options) ([]string, error) {
	entry := img.Entrypoint
	cmd := img.Cmd
	if o.EntrypointSet {
		entry = o.Entrypoint
		if len(entry) == 1 && entry[0] == "" {
			entry = nil
		}
		cmd = nil
	}
	if len(o.Cmd) > 0 {
		cmd = o.Cmd
	}
	args := append(append([]string{}, entry...), cmd...)
	if len(args) == 0 {
		return nil, userErr("no command specified: the image has no CMD or ENTRYPOINT; give one after the image name")
	}
	return args, nil
}

// Env merges the environment as docker does: PATH (default), HOSTNAME and
// TERM (with -t) first, overridden by the image's ENV, overridden by the
// user's -e/--env-file; HOME from the user's passwd entry when unset.
func Env(imageEnv, userEnv []string, hostname string, tty bool, home string) []string {
	env := []string{"PATH=" + imagecfg.DefaultPath, "HOSTNAME=" + hostname}
	if tty {
		env = append(env, "TERM=xterm")
	}
	for _, list := range [][]string{imageEnv, userEnv} {
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			env = imagecfg.SetEnv(env, k, v)
		}
	}
	hasHome := false
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") {
			hasHome = true
		}
	}
	if !hasHome {
		if home == "" {
			home = "/"
		}
		env = append(env, "HOME="+home)
	}
	return env
}

// ResolveUser resolves user[:group] (names or numbers) against the
// image's /etc/passwd and /etc/group, plus --group-add groups.
func ResolveUser(rootfs, spec string, groupAdd []string) (*user.ExecUser, error) {
	open := func(p string) io.ReadCloser {
		if rootfs == "" {
			return nil
		}
		full, err := securejoin.SecureJoin(rootfs, p)
		if err != nil {
			return nil
		}
		f, err := os.Open(full)
		if err != nil {
			return nil
		}
		return f
	}
	readers := func() (io.Reader, io.Reader, func()) {
		pw, gr := open("/etc/passwd"), open("/etc/group")
		var p, g io.Reader
		if pw != nil {
			p = pw
		}
		if gr != nil {
			g = gr
		}
		return p, g, func() {
			if pw != nil {
				pw.Close()
			}
			if gr != nil {
				gr.Close()
			}
		}
	}
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	p, g, done := readers()
	eu, err := user.GetExecUser(spec, defaults, p, g)
	done()
	if err != nil {
		name, _, _ := strings.Cut(spec, ":")
		switch {
		case errors.Is(err, user.ErrNoPasswdEntries):
			return nil, userErr("unable to find user %s: no matching entries in the image's /etc/passwd", name)
		case errors.Is(err, user.ErrNoGroupEntries):
			return nil, userErr("unable to find group %s: no matching entries in the image's /etc/group", spec[len(name)+1:])
		}
		return nil, userErr("resolving user %q in the image: %v", spec, err)
	}
	if len(groupAdd) > 0 {
		_, g, done := readers()
		var gids []int
		var err error
		if g != nil {
			gids, err = user.GetAdditionalGroups(groupAdd, g)
		} else {
			for _, ga := range groupAdd {
				n, perr := strconv.Atoi(ga)
				if perr != nil {
					err = fmt.Errorf("unable to find group %s: the image has no /etc/group", ga)
					break
				}
				gids = append(gids, n)
			}
		}
		done()
		if err != nil {
			return nil, userErr("--group-add: %v", err)
		}
		for _, gid := range gids {
			if !containsInt(eu.Sgids, gid) {
				eu.Sgids = append(eu.Sgids, gid)
			}
		}
	}
	return eu, nil
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func intsToUint32(xs []int) []uint32 {
	var out []uint32
	for _, x := range xs {
		out = append(out, uint32(x))
	}
	return out
}

func slicesClone(xs []string) []string { return append([]string(nil), xs...) }

// Masked and read-only paths, as docker's.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// DefaultDevices are the device nodes every container gets (bind-mounted
// from the host: a user namespace cannot mknod).
var DefaultDevices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}

func defaultDevices() []specs.LinuxDevice {
	var out []specs.LinuxDevice
	for _, d := range DefaultDevices {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			continue
		}
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := uint32(0), uint32(0)
		out = append(out, specs.LinuxDevice{
			Path: d, Type: "c",
			Major: int64(unixMajor(st.Rdev)), Minor: int64(unixMinor(st.Rdev)),
			FileMode: &mode, UID: &uid, GID: &gid,
		})
	}
	return out
}

func unixMajor(dev uint64) uint32 { return uint32((dev >> 8) & 0xfff) }
func unixMinor(dev uint64) uint32 { return uint32((dev & 0xff) | ((dev >> 12) & 0xfff00)) }

// Mounts is the container's mount table: docker's defaults, then the etc
// files, then the user's mounts (which replace a default at the same
// destination), ordered so that parents come before children.
func Mounts(in SpecInput, o *Options) []specs.Mount {
	shm := o.ShmSize
	if shm <= 0 {
		shm = DefaultShmSize
	}
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	if o.Privileged {
		sysOpts = []string{"nosuid", "noexec", "nodev", "rw"}
	}
	defaults := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shm, 10)}},
	}
	user := map[string]bool{}
	for _, m := range in.Mounts {
		user[path.Clean(m.Destination)] = true
	}
	var out []specs.Mount
	for _, m := range defaults {
		if !user[m.Destination] {
			out = append(out, m)
		}
	}
	etc := make([]string, 0, len(in.EtcFiles))
	for dst := range in.EtcFiles {
		etc = append(etc, dst)
	}
	sort.Strings(etc)
	for _, dst := range etc {
		if user[dst] || in.EtcFiles[dst] == "" {
			continue
		}
		opts := []string{"rbind", "rprivate"}
		if o.ReadOnly {
			opts = append(opts, "ro")
		}
		out = append(out, specs.Mount{Destination: dst, Type: "bind", Source: in.EtcFiles[dst], Options: opts})
	}
	um := append([]specs.Mount(nil), in.Mounts...)
	sort.SliceStable(um, func(i, j int) bool { return depth(um[i].Destination) < depth(um[j].Destination) })
	return append(out, um...)
}

func depth(p string) int { return strings.Count(path.Clean(p), "/") }

// ResolveMounts turns parsed mount requests into OCI mounts. Bind sources
// must exist (a missing one is an error naming it). volumeDir gives the
// host directory of a named (or, for "", a new anonymous) volume.
func ResolveMounts(reqs []MountRequest, volumeDir func(name string, req MountRequest) (string, error)) ([]specs.Mount, error) {
	var out []specs.Mount
	seen := map[string]bool{}
	for _, r := range reqs {
		dst := path.Clean(r.Target)
		if seen[dst] {
			return nil, userErr("duplicate mount point: %s", dst)
		}
		seen[dst] = true
		switch r.Type {
		case "bind":
			src := r.Source
			if !path.IsAbs(src) {
				return nil, userErr("bind source %q is not an absolute path", src)
			}
			if _, err := os.Stat(src); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil, userErr("bind source path does not exist: %s", src)
				}
				return nil, userErr("bind source %s: %v", src, err)
			}
			opts := []string{"rbind"}
			if r.ReadOnly {
				opts = append(opts, "ro")
			}
			opts = append(opts, propagationOr(r.Options, "rprivate")...)
			out = append(out, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts})
		case "volume":
			if volumeDir == nil {
				return nil, userErr("volumes are not available here")
			}
			dir, err := volumeDir(r.Source, r)
			if err != nil {
				return nil, err
			}
			opts := []string{"rbind"}
			if r.ReadOnly {
				opts = append(opts, "ro")
			}
			opts = append(opts, propagationOr(r.Options, "rprivate")...)
			out = append(out, specs.Mount{Destination: dst, Type: "bind", Source: dir, Options: opts})
		case "tmpfs":
			opts := []string{"nosuid", "nodev", "noexec"}
			for _, o := range r.Options {
				if o == "exec" {
					opts = removeString(opts, "noexec")
				}
				if o == "suid" {
					opts = removeString(opts, "nosuid")
				}
				if o == "dev" {
					opts = removeString(opts, "nodev")
				}
			}
			opts = append(opts, r.Options...)
			for i, o := range opts {
				if v, ok := strings.CutPrefix(o, "size="); ok {
					if n, err := units.RAMInBytes(v); err == nil {
						opts[i] = "size=" + strconv.FormatInt(n, 10)
					}
				}
			}
			if r.ReadOnly {
				opts = append(opts, "ro")
			}
			out = append(out, specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: opts})
		default:
			return nil, userErr("unknown mount type %q", r.Type)
		}
	}
	return out, nil
}

func propagationOr(opts []string, def string) []string {
	for _, o := range opts {
		if propagations[o] {
			return []string{o}
		}
	}
	return []string{def}
}

func removeString(xs []string, s string) []string {
	var out []string
	for _, x := range xs {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// Rlimits parses --ulimit values (go-units' parser, docker's names).
func Rlimits(ulimits []string) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	for _, u := range ulimits {
		l, err := units.ParseUlimit(u)
		if err != nil {
			return nil, userErr("invalid --ulimit %q: %v", u, err)
		}
		if l.Soft > l.Hard && l.Hard >= 0 {
			return nil, userErr("invalid --ulimit %q: soft limit above hard limit", u)
		}
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(l.Name), Hard: uint64(l.Hard), Soft: uint64(l.Soft)})
	}
	return out, nil
}

type securityOpts struct {
	noNewPrivs        bool
	seccompUnconfined bool
	seccompProfile    string
}

func securityOptions(opts []string) (securityOpts, error) {
	var s securityOpts
	for _, o := range opts {
		k, v, hasValue := strings.Cut(o, "=")
		if !hasValue {
			k, v, hasValue = strings.Cut(o, ":")
		}
		switch k {
		case "no-new-privileges":
			if !hasValue {
				s.noNewPrivs = true
				continue
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return s, userErr("invalid --security-opt %q: want no-new-privileges[=true|false]", o)
			}
			s.noNewPrivs = b
		case "seccomp":
			switch {
			case v == "unconfined":
				s.seccompUnconfined = true
			case v == "" || !hasValue:
				return s, userErr("invalid --security-opt %q: want seccomp=unconfined or seccomp=PROFILE.json", o)
			default:
				s.seccompProfile = v
			}
		case "label", "apparmor":
			// No SELinux or AppArmor here: accepted, as docker does on such hosts.
		default:
			return s, userErr("invalid --security-opt %q: nook knows no-new-privileges, seccomp=unconfined|PROFILE.json, label= and apparmor=", o)
		}
	}
	return s, nil
}
