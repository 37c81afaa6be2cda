package runner

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// TopResult is `nook top`'s table: ps's column titles and one row per
// process of the container (host pids, as docker shows them).
type TopResult struct {
	Titles    []string
	Processes [][]string
}

// Top lists the processes of a running container with the host's ps
// (psArgs as `ps` takes them; default -ef), as docker top does: ps runs
// on the host and only the container's rows are kept.
func (r *Runtime) Top(c *Container, psArgs []string) (*TopResult, error) {
	if !c.State.Running() || !alive(c.State.Pid, c.State.PidStart) {
		return nil, userErr("container %s is not running", c.Name)
	}
	pids, err := ContainerPids(c)
	if err != nil {
		return nil, err
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	if _, err := exec.LookPath("ps"); err != nil {
		return nil, errors.New("nook top runs the host's ps, which is not installed: install procps (apt-get install procps)")
	}
	strs := make([]string, len(pids))
	for i, p := range pids {
		strs[i] = strconv.Itoa(p)
	}
	out, err := exec.Command("ps", append(append([]string(nil), psArgs...), "-q", strings.Join(strs, ","))...).Output()
	if err != nil {
		// Some options (f, say) do not go with -q: filter the full list.
		var stderr bytes.Buffer
		cmd := exec.Command("ps", psArgs...)
		cmd.Stderr = &stderr
		if out, err = cmd.Output(); err != nil {
			return nil, userErr("ps %s: %v: %s", strings.Join(psArgs, " "), err, strings.TrimSpace(stderr.String()))
		}
	}
	return parsePS(out, pids)
}

// parsePS keeps the rows of pids (and the thread rows under them, which
// ps shows with "-" as pid), merging a last column that has spaces.
func parsePS(out []byte, pids []int) (*TopResult, error) {
	lines := strings.Split(string(out), "\n")
	res := &TopResult{Titles: strings.Fields(lines[0])}
	pidCol := -1
	for i, t := range res.Titles {
		if t == "PID" {
			pidCol = i
			break
		}
	}
	if pidCol < 0 {
		return nil, userErr("the ps options give no PID column: nook top needs it to tell the container's processes")
	}
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	keep := false
	n := len(res.Titles)
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < n {
			continue
		}
		if f[pidCol] != "-" {
			p, err := strconv.Atoi(f[pidCol])
			if err != nil {
				return nil, fmt.Errorf("unexpected pid %q in the output of ps", f[pidCol])
			}
			keep = want[p]
		}
		if keep {
			row := append(append([]string(nil), f[:n-1]...), strings.Join(f[n-1:], " "))
			res.Processes = append(res.Processes, row)
		}
	}
	return res, nil
}

// ContainerPids lists the host pids of the processes in a running
// container's pid namespace, in order.
func ContainerPids(c *Container) ([]int, error) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", c.State.Pid))
	if err != nil {
		return nil, userErr("container %s is not running", c.Name)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && l == ns {
			pids = append(pids, p)
		}
	}
	sort.Ints(pids)
	return pids, nil
}
