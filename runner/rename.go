package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.podman.io/storage"
	"golang.org/x/sys/unix"
)

// Rename gives a container a new name. The name must be free: renames are
// serialised by a lock, and a name taken meanwhile by a create is given
// back and the rename refused.
func (r *Runtime) Rename(ref, newName string) error {
	newName = strings.TrimPrefix(newName, "/")
	if err := validName(newName); err != nil {
		return &UserError{Err: err}
	}
	unlock, err := r.lockRenames()
	if err != nil {
		return err
	}
	defer unlock()
	c, err := r.Lookup(ref)
	if err != nil {
		return err
	}
	if c.Name == newName {
		return userErr("renaming container %s: the new name is the same as the current one", c.Name)
	}
	st := r.Store.Storage()
	if other, err := st.Container(newName); err == nil && other.ID != c.ID {
		return &UserError{Err: &NameInUseError{Name: newName, ID: other.ID}}
	}
	sc, err := st.Container(c.ID)
	if err != nil {
		return fmt.Errorf("renaming container %s: %w", c.Name, err)
	}
	old := sc.Names
	if err := st.SetNames(c.ID, []string{newName}); err != nil {
		if errors.Is(err, storage.ErrDuplicateName) {
			return &UserError{Err: &NameInUseError{Name: newName}}
		}
		return fmt.Errorf("renaming container %s: %w", c.Name, err)
	}
	unlockState, err := lockState(c.Dir)
	if err != nil {
		_ = st.SetNames(c.ID, old)
		return err
	}
	defer unlockState()
	if err := readJSON(c.Dir, fileContainer, c); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = st.SetNames(c.ID, old)
		return fmt.Errorf("reading container %s: %w", c.Name, err)
	}
	c.Name, c.Options.Name = newName, newName
	if err := writeJSON(c.Dir, fileContainer, c); err != nil {
		_ = st.SetNames(c.ID, old)
		return err
	}
	return nil
}

// lockRenames serialises renames in one store.
func (r *Runtime) lockRenames() (func(), error) {
	p := filepath.Join(r.Store.Root(), "rename.lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}
