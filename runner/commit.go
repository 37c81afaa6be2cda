package runner

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/docker/go-connections/nat"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
	"golang.org/x/sys/unix"

	"github.com/nook-containers/nook/imagecfg"
	"github.com/nook-containers/nook/store"
)

// CommitOptions are docker commit's flags.
type CommitOptions struct {
	// Names are the new image's names, normalized (store.NormalizeName);
	// none: an untagged image.
	Names   []string
	Message string   // -m: the history entry's comment
	Author  string   // -a
	Changes []string // -c: Dockerfile instructions applied to the config
	// Pause stops the container's processes while its changes are read,
	// so that the image is one consistent moment of the file system.
	Pause bool
}

// Commit makes an image from a container: the image's layers plus one
// layer with the container's changes (none when there are none), and the
// image's configuration with the container's run settings, then the
// changes, as docker commit does.
func (r *Runtime) Commit(ctx context.Context, c *Container, o CommitOptions) (*store.Image, error) {
	if _, err := commitChangesConfig(o.Changes); err != nil {
		return nil, err
	}
	img, err := r.Store.Lookup(c.ImageID)
	if err != nil {
		return nil, userErr("committing container %s: its image %s is no longer in the store", c.Name, store.ShortID(c.ImageID))
	}
	base, err := img.OCIConfig()
	if err != nil {
		return nil, err
	}
	st := r.Store.Storage()
	sc, err := st.Container(c.ID)
	if err != nil {
		return nil, fmt.Errorf("committing container %s: %w", c.Name, err)
	}
	spool, entries, err := r.spoolChanges(c, sc.LayerID, o.Pause)
	if spool != nil {
		defer os.Remove(spool.Name())
		defer spool.Close()
	}
	if err != nil {
		return nil, err
	}
	chain, err := r.Store.LayerChain(img.TopLayer)
	if err != nil {
		return nil, err
	}
	layers := make([]store.Layer, 0, len(chain)+1)
	for _, l := range chain {
		if l.UncompressedDigest == "" {
			return nil, fmt.Errorf("committing container %s: layer %s of its image has no diff ID", c.Name, store.ShortID(l.ID))
		}
		layers = append(layers, store.Layer{ID: l.ID, DiffID: l.UncompressedDigest, Size: l.UncompressedSize})
	}
	top := img.TopLayer
	var added *store.Layer
	if entries > 0 {
		if added, err = r.Store.PutLayer(img.TopLayer, spool); err != nil {
			return nil, fmt.Errorf("committing container %s: %w", c.Name, err)
		}
		top = added.ID
		layers = append(layers, *added)
	}
	now := time.Now().UTC()
	cfg := *base
	cfg.Config = CommitConfig(base.Config, c)
	if err := imagecfg.ApplyChanges(&cfg.Config, o.Changes); err != nil {
		if added != nil {
			_ = r.Store.DeleteLayer(added.ID)
		}
		return nil, &UserError{Err: err}
	}
	cfg.Created = v1.Time{Time: now}
	cfg.Author = o.Author
	cfg.Container = c.ID
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = append([]v1.Hash(nil), base.RootFS.DiffIDs...)
	cfg.History = append([]v1.History(nil), base.History...)
	if added != nil {
		h, err := v1.NewHash(added.DiffID.String())
		if err != nil {
			_ = r.Store.DeleteLayer(added.ID)
			return nil, err
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, h)
	}
	cfg.History = append(cfg.History, v1.History{
		Created: v1.Time{Time: now}, CreatedBy: strings.Join(c.Args, " "), Author: o.Author, Comment: o.Message,
		EmptyLayer: added == nil,
	})
	out, err := r.Store.CommitImage(top, layers, &cfg, o.Names)
	if err != nil {
		if added != nil {
			_ = r.Store.DeleteLayer(added.ID)
		}
		return nil, fmt.Errorf("committing container %s: %w", c.Name, err)
	}
	return out, nil
}

func commitChangesConfig(changes []string) (*v1.Config, error) {
	var cfg v1.Config
	if err := imagecfg.ApplyChanges(&cfg, changes); err != nil {
		return nil, &UserError{Err: err}
	}
	return &cfg, nil
}

// CommitConfig is the new image's configuration: the image's, with what
// the container was run with in its place (docker's merge): command and
// entrypoint, environment, working directory, user, exposed and published
// ports, anonymous volumes, labels and stop signal.
func CommitConfig(img v1.Config, c *Container) v1.Config {
	cfg := img
	o := &c.Options
	if o.EntrypointSet {
		cfg.Entrypoint = append([]string(nil), o.Entrypoint...)
		if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
			cfg.Entrypoint = nil
		}
		cfg.Cmd = append([]string(nil), o.Cmd...)
	} else if len(o.Cmd) > 0 {
		cfg.Cmd = append([]string(nil), o.Cmd...)
	}
	env := append([]string(nil), img.Env...)
	for _, kv := range o.Env {
		k, v, _ := strings.Cut(kv, "=")
		env = imagecfg.SetEnv(env, k, v)
	}
	cfg.Env = env
	if o.WorkingDir != "" {
		cfg.WorkingDir = path.Clean(o.WorkingDir)
	}
	if o.User != "" {
		cfg.User = o.User
	}
	if o.StopSignal != "" {
		cfg.StopSignal = o.StopSignal
	}
	ports := map[string]struct{}{}
	for p := range img.ExposedPorts {
		ports[p] = struct{}{}
	}
	for _, spec := range o.Ports {
		if pms, err := nat.ParsePortSpec(spec); err == nil {
			for _, pm := range pms {
				ports[string(pm.Port)] = struct{}{}
			}
		}
	}
	if len(ports) > 0 {
		cfg.ExposedPorts = ports
	}
	vols := map[string]struct{}{}
	for v := range img.Volumes {
		vols[v] = struct{}{}
	}
	for _, m := range c.Volumes {
		if m.Type == "volume" && m.Source == "" {
			vols[path.Clean(m.Target)] = struct{}{}
		}
	}
	if len(vols) > 0 {
		cfg.Volumes = vols
	}
	if len(c.Labels) > 0 {
		cfg.Labels = map[string]string{}
		for k, v := range c.Labels {
			cfg.Labels[k] = v
		}
	}
	cfg.Hostname, cfg.Domainname = "", ""
	return cfg
}

// spoolChanges writes the container's changes (its layer's diff against
// the image) to a temporary file and counts the entries. The diff reader
// holds the layer store's lock, which storing the layer needs: hence the
// file. The mount points nook makes for /etc/hosts, /etc/hostname and
// /etc/resolv.conf (empty files) are left out, as docker keeps them in a
// layer of their own, and overlay's own attributes are dropped.
func (r *Runtime) spoolChanges(c *Container, layerID string, pause bool) (*os.File, int, error) {
	dir := filepath.Join(r.Store.Root(), "commit-tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, err
	}
	spool, err := os.CreateTemp(dir, "diff-")
	if err != nil {
		return nil, 0, err
	}
	if pause && c.State.Running() {
		resume, err := pauseContainer(c)
		if err != nil {
			return spool, 0, err
		}
		defer resume()
	}
	unc := archive.Uncompressed
	diff, err := r.Store.Storage().Diff("", layerID, &storage.DiffOptions{Compression: &unc})
	if err != nil {
		return spool, 0, fmt.Errorf("reading the changes of container %s: %w", c.Name, err)
	}
	n, err := filterChanges(diff, spool)
	if cerr := diff.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return spool, 0, fmt.Errorf("reading the changes of container %s: %w", c.Name, err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return spool, 0, err
	}
	return spool, n, nil
}

var etcMountPoints = map[string]bool{"etc/hosts": true, "etc/hostname": true, "etc/resolv.conf": true}

func filterChanges(r io.Reader, w io.Writer) (int, error) {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if etcMountPoints[name] && h.Typeflag == tar.TypeReg && h.Size == 0 {
			continue
		}
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.trusted.overlay.") || strings.HasPrefix(k, "SCHILY.xattr.user.overlay.") {
				delete(h.PAXRecords, k)
				delete(h.Xattrs, strings.TrimPrefix(k, "SCHILY.xattr.")) //nolint:staticcheck // the writer still reads it
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return n, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return n, err
		}
		n++
	}
	return n, tw.Close()
}

// pauseContainer stops a running container's processes (SIGSTOP, or the
// cgroup v2 freezer when the container has a cgroup) until resume.
func pauseContainer(c *Container) (func(), error) {
	if spec, err := c.Spec(); err == nil && spec.Linux != nil && spec.Linux.CgroupsPath != "" {
		freeze := filepath.Join(spec.Linux.CgroupsPath, "cgroup.freeze")
		if err := os.WriteFile(freeze, []byte("1"), 0o644); err == nil {
			waitFrozen(spec.Linux.CgroupsPath)
			return func() { _ = os.WriteFile(freeze, []byte("0"), 0o644) }, nil
		}
	}
	pids, err := ContainerPids(c)
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.IntSlice(pids)))
	var stopped []int
	for _, p := range pids {
		if err := unix.Kill(p, unix.SIGSTOP); err == nil {
			stopped = append(stopped, p)
		}
	}
	return func() {
		for _, p := range stopped {
			_ = unix.Kill(p, unix.SIGCONT)
		}
	}, nil
}

func waitFrozen(cg string) {
	for i := 0; i < 100; i++ {
		b, err := os.ReadFile(filepath.Join(cg, "cgroup.events"))
		if err != nil || strings.Contains(string(b), "frozen 1") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
