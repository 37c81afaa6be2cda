package runner

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CgroupPlan is where a container's resource limits go: a cgroup v2
// directory the user may write (a delegated subtree) and the values.
type CgroupPlan struct {
	Path      string // absolute directory of the container's cgroup
	Memory    int64
	CPUs      float64
	PidsLimit int64
}

// cpuPeriod is the CFS period docker uses for --cpus.
const cpuPeriod = 100000

// Resources is the OCI form of the limits.
func (p *CgroupPlan) Resources() *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if p.Memory > 0 {
		m := p.Memory
		r.Memory = &specs.LinuxMemory{Limit: &m}
	}
	if p.CPUs > 0 {
		q := int64(math.Round(p.CPUs * cpuPeriod))
		per := uint64(cpuPeriod)
		r.CPU = &specs.LinuxCPU{Quota: &q, Period: &per}
	}
	if p.PidsLimit != 0 {
		n := p.PidsLimit
		r.Pids = &specs.LinuxPids{Limit: &n}
	}
	return r
}

// files is what Apply writes, file name -> content (cgroup v2 interface).
func (p *CgroupPlan) files() map[string]string {
	f := map[string]string{}
	if p.Memory > 0 {
		f["memory.max"] = strconv.FormatInt(p.Memory, 10)
	}
	if p.CPUs > 0 {
		f["cpu.max"] = fmt.Sprintf("%d %d", int64(math.Round(p.CPUs*cpuPeriod)), cpuPeriod)
	}
	if p.PidsLimit > 0 {
		f["pids.max"] = strconv.FormatInt(p.PidsLimit, 10)
	} else if p.PidsLimit < 0 {
		f["pids.max"] = "max"
	}
	return f
}

func (p *CgroupPlan) controllers() []string {
	var c []string
	if p.Memory > 0 {
		c = append(c, "memory")
	}
	if p.CPUs > 0 {
		c = append(c, "cpu")
	}
	if p.PidsLimit != 0 {
		c = append(c, "pids")
	}
	return c
}

// CgroupHost describes the machine's cgroup set-up; tests fake it.
type CgroupHost struct {
	Root       string // where cgroup2 is (normally /sys/fs/cgroup)
	IsV2       bool   // Root is a cgroup2 file system
	SelfCgroup string // this process's cgroup v2 path ("0::" line of /proc/self/cgroup)
}

// DetectCgroupHost reads the real machine.
func DetectCgroupHost() CgroupHost {
	h := CgroupHost{Root: "/sys/fs/cgroup"}
	var st unix.Statfs_t
	if err := unix.Statfs(h.Root, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		h.IsV2 = true
	}
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				h.SelfCgroup = p
			}
		}
	}
	return h
}

// PlanCgroup decides where the limits in o go, or explains why they
// cannot be applied here. It returns nil, nil when no limit was asked for.
func PlanCgroup(h CgroupHost, id string, o *Options) (*CgroupPlan, error) {
	if o.Memory < 0 || o.CPUs < 0 {
		return nil, userErr("--memory and --cpus must not be negative")
	}
	if o.Memory == 0 && o.CPUs == 0 && o.PidsLimit == 0 {
		return nil, nil
	}
	if o.Memory > 0 && o.Memory < 6<<20 {
		return nil, userErr("--memory %d is below the minimum of 6MB", o.Memory)
	}
	plan := &CgroupPlan{Memory: o.Memory, CPUs: o.CPUs, PidsLimit: o.PidsLimit}
	flags := limitFlags(o)
	if !h.IsV2 {
		return nil, userErr("%s cannot be applied: this machine uses cgroup v1 (%s is not a cgroup2 file system), "+
			"and nook applies limits only through cgroup v2 with a subtree delegated to the user. "+
			"An administrator can enable it by booting with systemd.unified_cgroup_hierarchy=1 and delegating "+
			"controllers to users (systemd: 'Delegate=cpu memory pids' in user@.service); "+
			"run without these flags meanwhile (see docs/running.md)", flags, h.Root)
	}
	// The invoking process lives in a leaf; its parent must be writable and
	// hand the controllers down for a sibling to get limits.
	self := filepath.Join(h.Root, filepath.Clean("/"+h.SelfCgroup))
	parent := filepath.Dir(self)
	if err := unix.Access(parent, unix.W_OK); err != nil {
		return nil, userErr("%s cannot be applied: the cgroup %s is not delegated to you (not writable: %v). "+
			"An administrator can delegate it (systemd: 'Delegate=yes' in user@.service), or run nook from a "+
			"delegated scope: systemd-run --user --scope -p Delegate=yes nook run ...", flags, parent, err)
	}
	sub, _ := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
	have := strings.Fields(string(sub))
	var missing []string
	for _, c := range plan.controllers() {
		if !containsString(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, userErr("%s cannot be applied: the controllers %s are not enabled for %s "+
			"(cgroup.subtree_control has %q). An administrator can delegate them (systemd: "+
			"'Delegate=%s' in user@.service)", flags, strings.Join(missing, ", "), parent,
			strings.TrimSpace(string(sub)), strings.Join(plan.controllers(), " "))
	}
	plan.Path = filepath.Join(parent, "nook-"+id)
	return plan, nil
}

func limitFlags(o *Options) string {
	var f []string
	if o.Memory != 0 {
		f = append(f, "--memory")
	}
	if o.CPUs != 0 {
		f = append(f, "--cpus")
	}
	if o.PidsLimit != 0 {
		f = append(f, "--pids-limit")
	}
	return strings.Join(f, ", ")
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// Create makes the cgroup and writes the limits.
func (p *CgroupPlan) Create() error {
	if err := os.Mkdir(p.Path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating cgroup %s: %w", p.Path, err)
	}
	for name, v := range p.files() {
		if err := os.WriteFile(filepath.Join(p.Path, name), []byte(v), 0o644); err != nil {
			_ = os.Remove(p.Path)
			return fmt.Errorf("setting %s=%s in %s: %w", name, v, p.Path, err)
		}
	}
	return nil
}

// AddProcess moves pid into the cgroup.
func (p *CgroupPlan) AddProcess(pid int) error {
	if err := os.WriteFile(filepath.Join(p.Path, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("moving process %d into %s: %w", pid, p.Path, err)
	}
	return nil
}

// Remove deletes the (empty) cgroup.
func (p *CgroupPlan) Remove() error {
	if err := os.Remove(p.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing cgroup %s: %w", p.Path, err)
	}
	return nil
}
