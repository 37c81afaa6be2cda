package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// SeccompOptions says which profile a container gets.
type SeccompOptions struct {
	Unconfined  bool   // seccomp=unconfined
	ProfilePath string // seccomp=PROFILE.json (docker's format); empty: the default profile
	// RestrictDeviceNodes makes mknod of character and block devices fail
	// even with CAP_MKNOD: the stand-in for the device cgroup that docker
	// uses to the same end, for a real-root container.
	RestrictDeviceNodes bool
}

// Seccomp resolves a profile for a container with the capability set caps,
// the way docker does: rules whose capability or architecture conditions
// do not hold are left out. It returns nil when unconfined.
func Seccomp(o SeccompOptions, caps []string) (*specs.LinuxSeccomp, error) {
	if o.Unconfined {
		return nil, nil
	}
	p := defaultProfile()
	if o.ProfilePath != "" {
		b, err := os.ReadFile(o.ProfilePath)
		if err != nil {
			return nil, fmt.Errorf("reading the seccomp profile: %w", err)
		}
		p = &seccompProfile{}
		if err := json.Unmarshal(b, p); err != nil {
			return nil, fmt.Errorf("decoding the seccomp profile %s: %w", o.ProfilePath, err)
		}
	}
	return resolveProfile(p, caps, runtime.GOARCH, o.RestrictDeviceNodes)
}

func resolveProfile(p *seccompProfile, caps []string, arch string, restrictDev bool) (*specs.LinuxSeccomp, error) {
	if p.DefaultAction == "" {
		return nil, fmt.Errorf("seccomp profile: defaultAction is missing")
	}
	out := &specs.LinuxSeccomp{
		DefaultAction:   specs.LinuxSeccompAction(p.DefaultAction),
		DefaultErrnoRet: p.DefaultErrnoRet,
		Architectures:   ociArches(arch),
	}
	holds := func(f profileFilter, all bool) bool {
		// includes: all listed must hold; excludes: any listed excludes.
		capOK := func(c string) bool { return slices.Contains(caps, c) }
		if len(f.Caps) > 0 {
			if all && !allOf(f.Caps, capOK) {
				return false
			}
			if !all && anyOf(f.Caps, capOK) {
				return true
			}
		}
		if len(f.Arches) > 0 {
			in := slices.Contains(f.Arches, arch)
			if all && !in {
				return false
			}
			if !all && in {
				return true
			}
		}
		return all
	}
	for _, r := range p.Syscalls {
		if !holds(r.Includes, true) || holds(r.Excludes, false) {
			continue
		}
		names := r.Names
		if r.Name != "" {
			names = append(slices.Clone(names), r.Name)
		}
		sc := specs.LinuxSyscall{Names: names, Action: specs.LinuxSeccompAction(r.Action), ErrnoRet: r.ErrnoRet}
		for _, a := range r.Args {
			sc.Args = append(sc.Args, specs.LinuxSeccompArg{Index: a.Index, Value: a.Value, ValueTwo: a.ValueTwo, Op: specs.LinuxSeccompOperator(a.Op)})
		}
		out.Syscalls = append(out.Syscalls, sc)
	}
	if restrictDev {
		out.Syscalls = restrictMknod(out.Syscalls)
	}
	return out, nil
}

// restrictMknod replaces unconditional allows of mknod and mknodat by
// allows for everything but character and block devices (S_IFCHR is the
// bit both S_IFCHR and S_IFBLK carry; fifos, sockets and files lack it).
func restrictMknod(in []specs.LinuxSyscall) []specs.LinuxSyscall {
	const sIFCHR = 0o020000
	var out []specs.LinuxSyscall
	for _, sc := range in {
		if sc.Action != specs.ActAllow || len(sc.Args) > 0 {
			out = append(out, sc)
			continue
		}
		keep := slices.DeleteFunc(slices.Clone(sc.Names), func(n string) bool { return n == "mknod" || n == "mknodat" })
		if len(keep) == len(sc.Names) {
			out = append(out, sc)
			continue
		}
		sc.Names = keep
		out = append(out, sc,
			specs.LinuxSyscall{Names: []string{"mknod"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 1, Value: sIFCHR, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
			specs.LinuxSyscall{Names: []string{"mknodat"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: sIFCHR, ValueTwo: 0, Op: specs.OpMaskedEqual}}})
	}
	return out
}

func allOf(xs []string, f func(string) bool) bool {
	for _, x := range xs {
		if !f(x) {
			return false
		}
	}
	return true
}

func anyOf(xs []string, f func(string) bool) bool {
	for _, x := range xs {
		if f(x) {
			return true
		}
	}
	return false
}

func ociArches(goarch string) []specs.Arch {
	switch goarch {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	case "riscv64":
		return []specs.Arch{specs.ArchRISCV64}
	case "s390x":
		return []specs.Arch{specs.ArchS390X, specs.ArchS390}
	case "ppc64le":
		return []specs.Arch{specs.ArchPPC64LE}
	}
	return nil
}
