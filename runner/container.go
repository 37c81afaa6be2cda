package runner

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/storage"
	"golang.org/x/sys/unix"
)

// Container statuses, as docker names them.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusExited  = "exited"
	StatusRemoval = "removing"
	// StatusRestarting: a detached container's monitor waits out the
	// restart policy's back-off before starting it again.
	StatusRestarting = "restarting"
)

// Container is a container record (container.json); it changes only on
// rename. Its State lives apart (state.json) because it changes often.
type Container struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Created    time.Time         `json:"created"`
	Image      string            `json:"image"`   // as the user named it
	ImageID    string            `json:"imageId"` // config digest, hex
	Rootfs     string            `json:"rootfs,omitempty"`
	Options    Options           `json:"options"`
	Args       []string          `json:"args"`
	Anonymous  []string          `json:"anonymousVolumes,omitempty"`
	Volumes    []MountRequest    `json:"volumes,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	StopSignal string            `json:"stopSignal,omitempty"`
	Exposed    []string          `json:"exposed,omitempty"` // the image's EXPOSE ports, for -P
	// Healthcheck is the health check in effect (the image's HEALTHCHECK
	// with the --health-* flags applied); nil: none.
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
	Dir         string       `json:"-"` // where the records live

	State State `json:"-"`
}

// State is how a container is doing (state.json).
type State struct {
	Status     string         `json:"status"`
	Pid        int            `json:"pid,omitempty"`
	PidStart   uint64         `json:"pidStart,omitempty"` // the pid's start time, against pid reuse
	Owner      int            `json:"owner,omitempty"`    // the supervising process: foreground nook or monitor
	OwnerStart uint64         `json:"ownerStart,omitempty"`
	ExitCode   int            `json:"exitCode"`
	Error      string         `json:"error,omitempty"`
	StartedAt  time.Time      `json:"startedAt"`
	FinishedAt time.Time      `json:"finishedAt"`
	Network    *NetworkResult `json:"network,omitempty"`

	// Generation counts starts. While Detached is set, the facts of run
	// Generation (status, pids, times, exit code, restarts) are the
	// monitor's, in monitor.json, and override the ones above; health
	// checks are recorded in health.json. Each file has one writer.
	Generation   int     `json:"generation,omitempty"`
	Detached     bool    `json:"detached,omitempty"`
	RestartCount int     `json:"restartCount,omitempty"`
	Health       *Health `json:"health,omitempty"`
	// UserNS is the user namespace the run was started in (rootless: the
	// holder's). A later invocation in another one (a new holder) cannot
	// reach the container's mounts or network.
	UserNS string `json:"userns,omitempty"`
}

// Running reports whether the state says running.
func (s State) Running() bool { return s.Status == StatusRunning }

// Active reports whether the container runs or waits to be restarted.
func (s State) Active() bool { return s.Status == StatusRunning || s.Status == StatusRestarting }

const (
	fileContainer = "container.json"
	fileSpec      = "config.json"
	fileState     = "state.json"
	fileLock      = "lock"
	fileMonitor   = "monitor.json" // written by the monitor (runner/monitor)
	fileHealth    = "health.json"
)

// NotFoundError is returned for an unknown container name or ID.
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("no such container: %s", e.Name) }

// NameInUseError is returned when --name is taken.
type NameInUseError struct{ Name, ID string }

func (e *NameInUseError) Error() string {
	return fmt.Sprintf("the container name %q is already in use by container %s: remove (nook rm %s) or rename that container to reuse the name",
		"/"+e.Name, shortID(e.ID), e.Name)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// validName is docker's rule for container names.
func validName(n string) error {
	if len(n) < 1 {
		return errors.New("empty container name")
	}
	for i, r := range n {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '_' || r == '.' || r == '-')
		if !ok {
			return fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", n)
		}
	}
	return nil
}

var (
	nameLeft  = []string{"amber", "brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nimble", "proud", "quiet", "rapid", "sharp", "sunny", "tender", "vivid", "witty", "zen"}
	nameRight = []string{"albattani", "babbage", "curie", "darwin", "euler", "fermat", "galileo", "hopper", "hypatia", "kepler", "lovelace", "meitner", "newton", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak"}
)

func randomName() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return nameLeft[int(b[0])%len(nameLeft)] + "_" + nameRight[int(b[1])%len(nameRight)]
}

// writeJSON writes v to dir/name atomically (temp file, rename).
func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

func readJSON(dir, name string, v any) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// lockState takes the container's state lock; call the returned func to
// release it.
func lockState(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, fileLock), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the container lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the container: %w", err)
	}
	return func() { f.Close() }, nil
}

// updateState changes a container's state under its lock.
func updateState(c *Container, fn func(*State)) error {
	unlock, err := lockState(c.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	var st State
	if err := readJSON(c.Dir, fileState, &st); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading the state of %s: %w", c.Name, err)
	}
	fn(&st)
	c.State = st
	return writeJSON(c.Dir, fileState, &st)
}

// procStart is a process's start time (clock ticks since boot), which
// tells a live process from a later one that reuses its pid; 0 when the
// process is gone or a zombie.
func procStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func alive(pid int, start uint64) bool {
	return pid > 0 && start != 0 && procStart(pid) == start
}

// reconcile corrects a state that says running when its process is gone
// (its supervisor was killed, or the holder restarted): it becomes exited,
// with the reason.
func reconcile(c *Container) {
	s := &c.State
	if !s.Active() {
		return
	}
	pidAlive := s.Status == StatusRunning && alive(s.Pid, s.PidStart)
	reason := ""
	switch {
	case pidAlive && s.UserNS != "" && s.UserNS != userNS():
		// The holder it ran in is gone (and its monitor, which would have
		// stopped it): no later invocation can reach its mounts or
		// network. Stop what can be stopped from here.
		reason = "the user namespace holder stopped while the container ran"
		if err := unix.Kill(s.Pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			reason += fmt.Sprintf("; its processes are out of reach of the new holder: stop them from your shell with kill -9 %d", s.Pid)
		}
	case pidAlive:
		return // running, whether or not its supervisor still watches
	case alive(s.Owner, s.OwnerStart):
		return // its supervisor is recording the end right now
	case s.Detached:
		reason = "the container's processes ended after its monitor was killed: the exit code is unknown"
	default:
		reason = "the container's processes ended while nook was not watching (its supervisor was killed or the namespace holder restarted)"
	}
	seen := *s
	_ = updateState(c, func(st *State) {
		if st.Generation != seen.Generation {
			return // started again meanwhile
		}
		// Keep what the monitor knew, and stop reading its record.
		gen, net := st.Generation, st.Network
		*st = seen
		st.Generation, st.Network = gen, net
		st.Detached = false
		st.Status = StatusExited
		if st.ExitCode == 0 {
			st.ExitCode = 137
		}
		st.Error = reason
		if st.FinishedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
			st.FinishedAt = time.Now().UTC()
		}
		st.Pid, st.PidStart = 0, 0
	})
}

// userNS names this process's user namespace ("user:[INODE]").
func userNS() string {
	ns, _ := os.Readlink("/proc/self/ns/user")
	return ns
}

// monitorRecord is monitor.json (written by runner/monitor/monitor.c).
type monitorRecord struct {
	Generation   int       `json:"generation"`
	Monitor      int       `json:"monitor"`
	MonitorStart uint64    `json:"monitorStart"`
	Status       string    `json:"status"`
	Pid          int       `json:"pid"`
	PidStart     uint64    `json:"pidStart"`
	StartedAt    time.Time `json:"startedAt"`
	FinishedAt   time.Time `json:"finishedAt"`
	ExitCode     int       `json:"exitCode"`
	RestartCount int       `json:"restartCount"`
	Error        string    `json:"error"`
}

// overlay applies the monitor's and the health checks' records of the
// current run to s.
func overlay(dir string, s *State) {
	if !s.Detached {
		return
	}
	var m monitorRecord
	if err := readJSON(dir, fileMonitor, &m); err == nil && m.Generation == s.Generation {
		s.Status, s.Pid, s.PidStart = m.Status, m.Pid, m.PidStart
		s.Owner, s.OwnerStart = m.Monitor, m.MonitorStart
		s.StartedAt, s.FinishedAt = m.StartedAt.UTC(), m.FinishedAt.UTC()
		s.ExitCode, s.RestartCount = m.ExitCode, m.RestartCount
		if m.Error != "" {
			s.Error = m.Error
		}
	}
	var h healthRecord
	if err := readJSON(dir, fileHealth, &h); err == nil && h.Generation == s.Generation && h.RunStartedAt.Equal(s.StartedAt) {
		s.Health = &h.Health
	} else if s.Status == StatusRunning && s.Health != nil {
		s.Health = &Health{Status: HealthStarting, Log: []HealthLog{}}
	}
}

// load reads one container's records.
func load(s storage.Store, sc *storage.Container) (*Container, error) {
	dir, err := s.ContainerDirectory(sc.ID)
	if err != nil {
		return nil, err
	}
	c := &Container{}
	if err := readJSON(dir, fileContainer, c); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// Created by another tool (a build) or half-created.
			c = &Container{ID: sc.ID, Created: sc.Created, ImageID: sc.ImageID}
			if len(sc.Names) > 0 {
				c.Name = sc.Names[0]
			}
			c.State.Status = StatusCreated
			c.Dir = dir
			return c, errForeign
		}
		return nil, fmt.Errorf("reading container %s: %w", shortID(sc.ID), err)
	}
	c.Dir = dir
	if err := readJSON(dir, fileState, &c.State); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the state of %s: %w", c.Name, err)
	}
	if c.State.Status == "" {
		c.State.Status = StatusCreated
	}
	overlay(dir, &c.State)
	reconcile(c)
	return c, nil
}

var errForeign = errors.New("not a nook container record")

// Spec reads the OCI configuration the container runs with.
func (c *Container) Spec() (*specs.Spec, error) {
	var s specs.Spec
	if err := readJSON(c.Dir, fileSpec, &s); err != nil {
		return nil, fmt.Errorf("reading the configuration of %s: %w", c.Name, err)
	}
	return &s, nil
}

// Lookup finds a container by name, ID or unique ID prefix.
func (r *Runtime) Lookup(ref string) (*Container, error) {
	st := r.Store.Storage()
	sc, err := st.Container(strings.TrimPrefix(ref, "/"))
	if err != nil {
		if errors.Is(err, storage.ErrContainerUnknown) {
			return nil, &NotFoundError{Name: ref}
		}
		return nil, fmt.Errorf("looking up container %s: %w", ref, err)
	}
	c, err := load(st, sc)
	if err != nil && !errors.Is(err, errForeign) {
		return nil, err
	}
	return c, nil
}

// List returns every container, newest first.
func (r *Runtime) List() ([]*Container, error) {
	st := r.Store.Storage()
	scs, err := st.Containers()
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	var out []*Container
	for i := range scs {
		c, err := load(st, &scs[i])
		if errors.Is(err, errForeign) {
			continue // a build's working container, not the user's
		}
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, storage.ErrContainerUnknown) {
				continue // removed meanwhile
			}
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}
