package builder

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"go.podman.io/storage"
	"golang.org/x/sys/unix"
)

// A lease records, in a file locked with flock for as long as this
// process holds it, a mount or a writable layer a build made. The lock
// dies with the process: a later build that can take the lock knows the
// owner was killed, and unmounts (and for a writable layer, deletes) what
// the lease names. So a build killed with kill -9 leaves nothing mounted
// for long.
type leases struct{ dir string }

type leaseData struct {
	Kind  string `json:"kind"` // "mount" or "rw"
	Layer string `json:"layer"`
}

type lease struct {
	f    *os.File
	path string
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (l *leases) acquire(kind, layer string) (*lease, error) {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(l.dir, newID()+".lease")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		os.Remove(p)
		return nil, err
	}
	b, _ := json.Marshal(leaseData{Kind: kind, Layer: layer})
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(p)
		return nil, err
	}
	return &lease{f: f, path: p}, nil
}

func (le *lease) release() {
	if le == nil {
		return
	}
	os.Remove(le.path)
	le.f.Close()
}

// sweep cleans up after builds that were killed.
func (l *leases) sweep(st storage.Store) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".lease") {
			continue
		}
		p := filepath.Join(l.dir, e.Name())
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close() // its build is running
			continue
		}
		var d leaseData
		b, _ := os.ReadFile(p)
		if json.Unmarshal(b, &d) == nil && d.Layer != "" {
			switch d.Kind {
			case "mount":
				_, _ = st.Unmount(d.Layer, false)
			case "rw":
				if _, err := st.Unmount(d.Layer, true); err == nil || errors.Is(err, storage.ErrLayerNotMounted) || errors.Is(err, storage.ErrLayerUnknown) {
					_ = st.DeleteLayer(d.Layer)
				}
			}
		}
		os.Remove(p)
		f.Close()
	}
}

// held lists the layers of leases whose builds are running.
func (l *leases) held() []string {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".lease") {
			continue
		}
		p := filepath.Join(l.dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
			f.Close() // its build is gone: sweep's business
			continue
		}
		f.Close()
		var d leaseData
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &d) == nil && d.Layer != "" {
			out = append(out, d.Layer)
		}
	}
	return out
}
