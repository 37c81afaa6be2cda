package runner

import (
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// bpfPolicy turns an OCI seccomp section into a go-seccomp-bpf policy for
// the native architecture. Rules are tried in order and the first match
// decides; names the architecture does not have are skipped (as libseccomp
// does). Other architectures' system calls (e.g. the 32-bit ABI on amd64)
// get the default action.
func bpfPolicy(s *specs.LinuxSeccomp) (*seccomp.Policy, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	def, err := bpfAction(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	if def&^seccomp.ActionErrno == 1 {
		def = seccomp.ActionErrno // the library's spelling of "errno EPERM"
	}
	if def&0xffff != 0 && def&^0xffff == seccomp.ActionErrno {
		return nil, fmt.Errorf("seccomp: a default action of errno %d is not supported (only EPERM)", def&0xffff)
	}
	p := &seccomp.Policy{DefaultAction: def}
	for i, sc := range s.Syscalls {
		act, err := bpfAction(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp rule %d: %w", i, err)
		}
		g := seccomp.SyscallGroup{Action: act}
		seen := map[string]bool{}
		var conds seccomp.ArgumentConditions
		for _, a := range sc.Args {
			c, err := bpfCondition(a)
			if err != nil {
				return nil, fmt.Errorf("seccomp rule %d: %w", i, err)
			}
			conds = append(conds, c)
		}
		for _, n := range sc.Names {
			if _, ok := info.SyscallNames[n]; !ok || seen[n] {
				continue
			}
			seen[n] = true
			if len(conds) == 0 {
				g.Names = append(g.Names, n)
			} else {
				g.NamesWithCondtions = append(g.NamesWithCondtions, seccomp.NameWithConditions{Name: n, Conditions: conds})
			}
		}
		if len(g.Names)+len(g.NamesWithCondtions) > 0 {
			p.Syscalls = append(p.Syscalls, g)
		}
	}
	if len(p.Syscalls) == 0 {
		// The library wants at least one group; this one changes nothing.
		p.Syscalls = []seccomp.SyscallGroup{{Names: []string{"exit_group"}, Action: seccomp.ActionAllow}}
	}
	return p, nil
}

func bpfAction(a specs.LinuxSeccompAction, errno *uint) (seccomp.Action, error) {
	switch a {
	case specs.ActAllow:
		return seccomp.ActionAllow, nil
	case specs.ActErrno:
		e := uint(1) // EPERM
		if errno != nil {
			e = *errno
		}
		return seccomp.ActionErrno | seccomp.Action(e&0xffff), nil
	case specs.ActKill, specs.ActKillThread:
		return seccomp.ActionKillThread, nil
	case specs.ActKillProcess:
		return seccomp.ActionKillProcess, nil
	case specs.ActTrap:
		return seccomp.ActionTrap, nil
	case specs.ActLog:
		return seccomp.ActionLog, nil
	}
	return 0, fmt.Errorf("unsupported seccomp action %q", a)
}

func bpfCondition(a specs.LinuxSeccompArg) (seccomp.Condition, error) {
	c := seccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
	switch a.Op {
	case specs.OpEqualTo:
		c.Operation = seccomp.Equal
	case specs.OpNotEqual:
		c.Operation = seccomp.NotEqual
	case specs.OpGreaterThan:
		c.Operation = seccomp.GreaterThan
	case specs.OpGreaterEqual:
		c.Operation = seccomp.GreaterOrEqual
	case specs.OpLessThan:
		c.Operation = seccomp.LessThan
	case specs.OpLessEqual:
		c.Operation = seccomp.LessOrEqual
	case specs.OpMaskedEqual:
		if a.ValueTwo != 0 {
			return c, fmt.Errorf("seccomp: SCMP_CMP_MASKED_EQ with a non-zero value two is not supported")
		}
		c.Operation = seccomp.BitsNotSet
	default:
		return c, fmt.Errorf("unsupported seccomp operator %q", a.Op)
	}
	return c, nil
}

// LoadDefaultSeccomp loads docker's default profile, resolved for a
// process that will hold caps, into the calling process (all its
// threads): the build's RUN steps get it as docker's builds do. Call it
// while the process still has CAP_SYS_ADMIN (no no_new_privs needed).
// restrictDevices refuses mknod of devices (real root: no device cgroup).
func LoadDefaultSeccomp(caps []string, restrictDevices bool) error {
	s, err := Seccomp(SeccompOptions{RestrictDeviceNodes: restrictDevices}, caps)
	if err != nil {
		return err
	}
	p, err := bpfPolicy(s)
	if err != nil {
		return err
	}
	return loadSeccomp(p, false)
}
