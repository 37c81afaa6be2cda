// Package store is nook's per-user state: image layers and image records
// (through go.podman.io/storage), with every change under the library's
// locks so that concurrent invocations and a kill -9 at any moment leave a
// store the next invocation reads.
//
// Image records keep the OCI manifest and config bytes exactly as written;
// the image ID is the config digest, as in docker and podman.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.podman.io/storage"
	"go.podman.io/storage/types"
)

// Options says where the store lives. Zero values take the per-user defaults.
type Options struct {
	// Root holds layers and image records (--root, NOOK_ROOT).
	Root string
	// RunRoot holds volatile state: mount points and mount counts (--runroot).
	RunRoot string
	// Driver is "overlay" or "vfs"; empty picks the driver the root was
	// created with, else overlay where the kernel allows it, else vfs.
	Driver string
	// SquashOwners imports every file as owned by root: used when the
	// namespace maps a single id.
	SquashOwners bool
}

// Store is an open store. It is safe for concurrent use by goroutines and by
// other processes.
type Store struct {
	s    storage.Store
	opts Options
}

// ErrNotFound is returned (wrapped) when an image or layer does not exist.
var ErrNotFound = errors.New("not found")

// Open opens (creating if needed) the store.
func Open(o Options) (*Store, error) {
	if o.Root == "" || o.RunRoot == "" {
		return nil, errors.New("store: root and run root must be set")
	}
	if err := os.MkdirAll(o.Root, 0o700); err != nil {
		return nil, fmt.Errorf("creating store directory %s: %w", o.Root, err)
	}
	if err := os.MkdirAll(o.RunRoot, 0o700); err != nil {
		return nil, fmt.Errorf("creating run directory %s: %w", o.RunRoot, err)
	}
	driver := o.Driver
	if had := existingDriver(o.Root); driver == "" {
		driver = had
	} else if had != "" && had != driver {
		// storage would start a second, empty set of layers beside the
		// first: the images would seem gone.
		return nil, fmt.Errorf("the store in %s was created with the %s driver, not %s: use another --root for %s, or remove this store first (nook system reset)",
			o.Root, had, driver, driver)
	}
	var driverOpts []string
	if o.SquashOwners {
		driverOpts = append(driverOpts, "overlay.ignore_chown_errors=true", "vfs.ignore_chown_errors=true")
	}
	so := types.StoreOptions{
		RunRoot:             o.RunRoot,
		GraphRoot:           o.Root,
		GraphDriverName:     driver,
		GraphDriverPriority: []string{"overlay", "vfs"},
		GraphDriverOptions:  driverOpts,
	}
	if driver == "overlay" || driver == "" {
		// Never fall back to fuse-overlayfs: native overlay or vfs.
		so.GraphDriverOptions = append(so.GraphDriverOptions, "overlay.mount_program=")
	}
	s, err := storage.GetStore(so)
	if err != nil && o.Driver == "" && driver != "vfs" {
		// Native overlay is refused here (old kernel, odd filesystem):
		// fall back to vfs in a root of its own is not possible without
		// losing the root, so only do it for a fresh root.
		if existingDriver(o.Root) == "" {
			so.GraphDriverName = "vfs"
			so.GraphDriverOptions = driverOpts
			s, err = storage.GetStore(so)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening the store in %s: %w", o.Root, err)
	}
	o.Driver = s.GraphDriverName()
	return &Store{s: s, opts: o}, nil
}

// existingDriver names the driver a store root was initialised with.
func existingDriver(root string) string {
	for _, d := range []string{"overlay", "vfs"} {
		if fi, err := os.Stat(filepath.Join(root, d+"-layers")); err == nil && fi.IsDir() {
			return d
		}
	}
	return ""
}

// Close releases the store. Mounted layers stay mounted.
func (s *Store) Close() error {
	_, err := s.s.Shutdown(false)
	if errors.Is(err, storage.ErrLayerUsedByContainer) {
		// Shutdown(false) reports layers still mounted: running
		// containers' root file systems, which must stay mounted.
		return nil
	}
	return err
}

// Driver is the name of the graph driver in use.
func (s *Store) Driver() string { return s.s.GraphDriverName() }

// Root is the store directory.
func (s *Store) Root() string { return s.opts.Root }

// RunRoot is the volatile state directory.
func (s *Store) RunRoot() string { return s.opts.RunRoot }

// DriverStatus is the driver's own description (backing filesystem, native
// overlay diff, ...).
func (s *Store) DriverStatus() [][2]string {
	d, err := s.s.GraphDriver()
	if err != nil {
		return nil
	}
	return d.Status()
}

// Storage is the underlying containers/storage store, for packages that
// need its layer and container API (runner, builder, pusher).
func (s *Store) Storage() storage.Store { return s.s }
