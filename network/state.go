package network

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/sys/atomicwriter"
	"golang.org/x/sys/unix"
)

// locked runs fn holding the exclusive lock on m's directory. The lock is
// an flock, so it dies with a killed process.
func (m *Manager) locked(fn func() error) error {
	p := filepath.Join(m.dir, lockName)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("opening the network lock %s: %w", p, err)
	}
	defer f.Close()
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("locking %s: %w", p, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN) //nolint:errcheck // closing releases it anyway
	return fn()
}

// Each network has two files: its definition, Dir/NAME.json, written
// durably (fsync'd) when the network is created, and its leases,
// Dir/leases/NAME.json, replaced on every attach and detach by rename
// only. A kill -9 leaves either file whole; a power loss may lose recent
// leases, which is right, since no container survives it.

type leaseFile struct {
	Version int               `json:"version"`
	Last    string            `json:"last,omitempty"`
	Leases  map[string]*Lease `json:"leases"`
}

func (m *Manager) leasesFile(name string) string { return filepath.Join(m.dir, "leases", name+".json") }

// saveDef writes n's definition durably, then its leases. Called with the
// lock held.
func (m *Manager) saveDef(n *Network) error {
	n.Version = fileVersion
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding network %s: %w", n.Name, err)
	}
	if err := atomicwriter.WriteFile(m.networkFile(n.Name), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving network %s: %w", n.Name, err)
	}
	return m.save(n)
}

// save replaces n's leases file (write a temporary file, rename). Called
// with the lock held.
func (m *Manager) save(n *Network) error {
	b, err := json.Marshal(leaseFile{Version: fileVersion, Last: n.Last, Leases: n.Leases})
	if err != nil {
		return fmt.Errorf("encoding the leases of network %s: %w", n.Name, err)
	}
	dir := filepath.Join(m.dir, "leases")
	f, err := os.CreateTemp(dir, ".tmp-*")
	if os.IsNotExist(err) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.CreateTemp(dir, ".tmp-*")
		}
	}
	if err != nil {
		return fmt.Errorf("saving the leases of network %s: %w", n.Name, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), m.leasesFile(n.Name))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("saving the leases of network %s: %w", n.Name, err)
	}
	return nil
}

// drop deletes n's files. Called with the lock held.
func (m *Manager) drop(n *Network) error {
	for _, p := range []string{m.leasesFile(n.Name), m.networkFile(n.Name)} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("removing network %s: %w", n.Name, err)
		}
	}
	return nil
}

func readNetwork(path string) (*Network, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var n Network
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if n.Version > fileVersion {
		return nil, fmt.Errorf("written by a newer nook (format %d)", n.Version)
	}
	if n.Name == "" || n.ID == "" || n.Subnet == "" {
		return nil, fmt.Errorf("incomplete network file")
	}
	n.Leases = map[string]*Lease{}
	n.Last = ""
	lp := filepath.Join(filepath.Dir(path), "leases", filepath.Base(path))
	if b, err := os.ReadFile(lp); err == nil {
		var lf leaseFile
		if err := json.Unmarshal(b, &lf); err != nil {
			return &n, fmt.Errorf("leases file %s is damaged (%v): its leases are dropped", lp, err)
		}
		n.Last = lf.Last
		for id, l := range lf.Leases {
			if l != nil {
				n.Leases[id] = l
			}
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	return &n, nil
}
