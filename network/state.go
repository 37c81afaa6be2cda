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

// save replaces n's file atomically (write to a temporary file, fsync,
// rename). Called with the lock held.
func (m *Manager) save(n *Network) error {
	n.Version = fileVersion
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding network %s: %w", n.Name, err)
	}
	b = append(b, '\n')
	if err := atomicwriter.WriteFile(m.networkFile(n.Name), b, 0o600); err != nil {
		return fmt.Errorf("saving network %s: %w", n.Name, err)
	}
	return nil
}

// drop deletes n's file. Called with the lock held.
func (m *Manager) drop(n *Network) error {
	if err := os.Remove(m.networkFile(n.Name)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing network %s: %w", n.Name, err)
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
	if n.Leases == nil {
		n.Leases = map[string]*Lease{}
	}
	return &n, nil
}
