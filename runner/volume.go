package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"go.podman.io/storage/pkg/archive"
	"golang.org/x/sys/unix"
)

// Volume is a named volume: a directory under the store that outlives
// containers.
type Volume struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"`
	Mountpoint string            `json:"Mountpoint"`
	CreatedAt  time.Time         `json:"CreatedAt"`
	Labels     map[string]string `json:"Labels"`
	Scope      string            `json:"Scope"`
	Options    map[string]string `json:"Options"`
	Anonymous  bool              `json:"Anonymous,omitempty"`
	// Populated says the volume got its first content (from an image or a
	// container); only an empty, never-used volume is filled from an image.
	Populated bool `json:"Populated,omitempty"`
}

const volumeMeta = "volume.json"

func (r *Runtime) volumesDir() string { return filepath.Join(r.Store.Root(), "volumes") }

// VolumeNotFoundError is returned for an unknown volume.
type VolumeNotFoundError struct{ Name string }

func (e *VolumeNotFoundError) Error() string { return fmt.Sprintf("no such volume: %s", e.Name) }

// lockVolumes serialises volume creation and removal.
func (r *Runtime) lockVolumes() (func(), error) {
	if err := os.MkdirAll(r.volumesDir(), 0o700); err != nil {
		return nil, fmt.Errorf("creating the volumes directory: %w", err)
	}
	return lockState(r.volumesDir())
}

// VolumeCreate creates a named volume (a random name when name is ""); an
// existing volume is returned as is.
func (r *Runtime) VolumeCreate(name string, labels map[string]string) (*Volume, bool, error) {
	anonymous := name == ""
	if anonymous {
		name = newID()
	} else if err := validVolumeName(name); err != nil {
		return nil, false, &UserError{Err: err}
	}
	unlock, err := r.lockVolumes()
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	dir := filepath.Join(r.volumesDir(), name)
	var v Volume
	if err := readJSON(dir, volumeMeta, &v); err == nil {
		return &v, false, nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "_data"), 0o755); err != nil {
		return nil, false, fmt.Errorf("creating volume %s: %w", name, err)
	}
	if labels == nil {
		labels = map[string]string{}
	}
	v = Volume{Name: name, Driver: "local", Mountpoint: filepath.Join(dir, "_data"), CreatedAt: time.Now().UTC().Truncate(time.Second),
		Labels: labels, Scope: "local", Options: map[string]string{}, Anonymous: anonymous}
	if err := writeJSON(dir, volumeMeta, &v); err != nil {
		return nil, false, err
	}
	return &v, true, nil
}

// VolumeInspect reads a volume.
func (r *Runtime) VolumeInspect(name string) (*Volume, error) {
	var v Volume
	if err := readJSON(filepath.Join(r.volumesDir(), name), volumeMeta, &v); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &VolumeNotFoundError{Name: name}
		}
		return nil, fmt.Errorf("reading volume %s: %w", name, err)
	}
	return &v, nil
}

// Volumes lists the volumes by name.
func (r *Runtime) Volumes() ([]*Volume, error) {
	ents, err := os.ReadDir(r.volumesDir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*Volume
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if v, err := r.VolumeInspect(e.Name()); err == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// VolumeInUseError is returned when a volume a container uses is removed.
type VolumeInUseError struct{ Name, Container string }

func (e *VolumeInUseError) Error() string {
	return fmt.Sprintf("volume %s is in use by container %s: remove the container first (or use -f)", e.Name, e.Container)
}

// volumeUsers names the containers that mount volume name.
func (r *Runtime) volumeUsers(name string) ([]string, error) {
	cs, err := r.List()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cs {
		for _, v := range c.Volumes {
			if v.Type == "volume" && v.Source == name {
				out = append(out, c.Name)
			}
		}
	}
	return out, nil
}

// VolumeRemove removes a volume unless a container uses it (force removes
// it anyway, as docker's -f does only for unused ones: here it is refused
// for a running container's volume).
func (r *Runtime) VolumeRemove(name string, force bool) error {
	if _, err := r.VolumeInspect(name); err != nil {
		return err
	}
	users, err := r.volumeUsers(name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return &VolumeInUseError{Name: name, Container: users[0]}
	}
	unlock, err := r.lockVolumes()
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.RemoveAll(filepath.Join(r.volumesDir(), name)); err != nil {
		return fmt.Errorf("removing volume %s: %w", name, err)
	}
	return nil
}

// VolumePrune removes every volume no container uses (only anonymous ones
// unless all), and returns their names.
func (r *Runtime) VolumePrune(all bool) ([]string, error) {
	vs, err := r.Volumes()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vs {
		if !all && !v.Anonymous {
			continue
		}
		if err := r.VolumeRemove(v.Name, false); err != nil {
			var inUse *VolumeInUseError
			if errors.As(err, &inUse) {
				continue
			}
			return out, err
		}
		out = append(out, v.Name)
	}
	return out, nil
}

// volumeDirFor returns the host directory to mount for a volume request,
// creating the volume and, as docker does on first use, copying into it
// what the image has at the target.
func (r *Runtime) volumeDirFor(rootfs string, created *[]string) func(string, MountRequest) (string, error) {
	return func(name string, req MountRequest) (string, error) {
		v, isNew, err := r.VolumeCreate(name, nil)
		if err != nil {
			return "", err
		}
		if isNew && name == "" {
			*created = append(*created, v.Name)
		}
		if !v.Populated && !req.NoCopy {
			if err := populate(rootfs, req.Target, v.Mountpoint); err != nil {
				return "", err
			}
			v.Populated = true
			_ = writeJSON(filepath.Dir(v.Mountpoint), volumeMeta, v)
		}
		return v.Mountpoint, nil
	}
}

// populate copies the image's content at target into an empty volume.
func populate(rootfs, target, dst string) error {
	src, err := securejoin.SecureJoin(rootfs, target)
	if err != nil {
		return nil
	}
	fi, err := os.Stat(src)
	if err != nil || !fi.IsDir() {
		return nil
	}
	if ents, err := os.ReadDir(dst); err != nil || len(ents) > 0 {
		return nil // not empty: the volume keeps its data
	}
	if ents, _ := os.ReadDir(src); len(ents) == 0 {
		return nil
	}
	if err := archive.NewDefaultArchiver().CopyWithTar(src, dst); err != nil {
		return fmt.Errorf("copying %s from the image into the volume: %w", target, err)
	}
	var st unix.Stat_t
	if unix.Stat(src, &st) == nil {
		_ = os.Lchown(dst, int(st.Uid), int(st.Gid))
		_ = os.Chmod(dst, fi.Mode().Perm())
	}
	return nil
}
