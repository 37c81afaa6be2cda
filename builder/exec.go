package builder

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

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/sys/user"
	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"

	"github.com/nook-containers/nook/store"
)

// Layer is a layer a step made.
type Layer struct {
	ID     string
	DiffID digest.Digest
	Size   int64
}

// Executor makes the layers of steps and records the image. Build calls
// it only on cache misses; a recording Executor turns a build into a
// list of operations in tests.
type Executor interface {
	// Copy writes the layer of a COPY, ADD or WORKDIR step over op.Parent.
	// It returns nil when the step changes nothing.
	Copy(ctx context.Context, op *CopyOp) (*Layer, error)
	// Run runs a RUN step's process over op.Parent and stores what the
	// process changed as a layer.
	Run(ctx context.Context, op *RunOp) (*Layer, error)
	// Commit records the target image.
	Commit(ctx context.Context, op *CommitOp) (*store.Image, error)
}

// CopyOp is one COPY, ADD or WORKDIR step to execute.
type CopyOp struct {
	Parent    string // layer ID, "" for scratch
	Spec      *CopySpec
	Workdir   *WorkdirSpec
	Sels      []selection // sources from the context, heredocs and downloads
	FromLayer string      // COPY --from a stage or image: its top layer ("" = empty)
	Wildcard  bool
	Epoch     *time.Time
}

// RunOp is one RUN step to execute.
type RunOp struct {
	Parent   string
	Spec     *RunSpec
	Mounts   []ResolvedMount
	Hostname string
	Stdout   io.Writer // the process's output
	Epoch    *time.Time
}

// ResolvedMount is a RUN --mount with its source found.
type ResolvedMount struct {
	Mount
	// HostPath is the source on this machine: a context directory, a
	// cache directory, a secret file; for a stage or image, FromLayer is
	// mounted and Source looked up in it.
	HostPath  string
	FromLayer string
}

// CommitOp records an image.
type CommitOp struct {
	Top    string
	Layers []store.Layer
	Config *v1.ConfigFile
	Names  []string
}

// Process is what ProcessRunner runs: a command in a root filesystem.
type Process struct {
	Rootfs   string
	Args     []string
	Env      []string
	UID, GID int
	Groups   []int
	Cwd      string
	Network  string // none, default, host
	Hostname string
	Mounts   []ProcMount
	Stdout   io.Writer
	Stderr   io.Writer
}

// ProcMount is a mount inside the process's root filesystem.
type ProcMount struct {
	Type     string // bind, tmpfs
	Source   string
	Target   string // absolute, in the rootfs
	ReadOnly bool
	Size     int64 // tmpfs
	Mode     uint32
}

// ProcessRunner runs processes for RUN steps. A non-zero exit is an
// *ExitError.
type ProcessRunner interface {
	RunProcess(ctx context.Context, p *Process) error
}

// ExitError is a RUN process that exited non-zero.
type ExitError struct{ Code int }

func (e *ExitError) Error() string {
	return fmt.Sprintf("the command exited with code %d", e.Code)
}

// storeExecutor executes steps against the store.
type storeExecutor struct {
	s      *store.Store
	runner ProcessRunner
	tmp    string // spool directory on the store's filesystem
	leases *leases
}

func (x *storeExecutor) mount(id string) (string, func(), error) {
	if id == "" {
		return "", func() {}, nil
	}
	le, err := x.leases.acquire("mount", id)
	if err != nil {
		return "", nil, fmt.Errorf("recording a mount: %w", err)
	}
	p, err := x.s.Storage().Mount(id, "")
	if err != nil {
		le.release()
		return "", nil, fmt.Errorf("mounting layer %s: %w", store.ShortID(id), err)
	}
	return p, func() {
		_, _ = x.s.Storage().Unmount(id, false)
		le.release()
	}, nil
}

// putTar stores a layer from a tar produced by write.
func (x *storeExecutor) putTar(parent string, write func(io.Writer) error) (*Layer, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	l, err := x.s.PutLayer(parent, pr)
	pr.CloseWithError(errors.New("layer write abandoned"))
	if err != nil {
		return nil, err
	}
	return &Layer{ID: l.ID, DiffID: l.DiffID, Size: l.Size}, nil
}

func (x *storeExecutor) Copy(ctx context.Context, op *CopyOp) (*Layer, error) {
	var rootfs string
	if op.Spec == nil || !op.Spec.Link {
		p, release, err := x.mount(op.Parent)
		if err != nil {
			return nil, err
		}
		defer release()
		rootfs = p
	}
	job := &copyJob{spec: op.Spec, rootfs: rootfs, sels: op.Sels, epoch: op.Epoch, now: time.Now(), wildcat: op.Wildcard}
	if op.Workdir != nil {
		job.mkdir, job.mkUser = op.Workdir.Path, op.Workdir.User
		if rootfs != "" {
			if rel, err := rootPath(rootfs, op.Workdir.Path); err == nil && existingDir(rootfs, rel) != nil {
				return nil, nil // nothing to create
			}
		}
	}
	if op.FromLayer != "" {
		p, release, err := x.mount(op.FromLayer)
		if err != nil {
			return nil, err
		}
		defer release()
		src := &source{root: p}
		sels, wild, err := selectionsFor(src, op.Spec)
		if err != nil {
			return nil, err
		}
		job.sels = append(sels, job.sels...)
		job.wildcat = job.wildcat || wild
	} else if op.Spec != nil && op.Spec.FromStage >= 0 {
		// --from an empty stage (scratch with no layers).
		src := &source{root: emptyDir()}
		sels, wild, err := selectionsFor(src, op.Spec)
		if err != nil {
			return nil, err
		}
		job.sels = append(sels, job.sels...)
		job.wildcat = job.wildcat || wild
	}
	return x.putTar(op.Parent, job.write)
}

func emptyDir() string {
	d, _ := os.MkdirTemp("", "nook-empty-")
	return d
}

func (x *storeExecutor) Commit(ctx context.Context, op *CommitOp) (*store.Image, error) {
	return x.s.CommitImage(op.Top, op.Layers, op.Config, op.Names)
}

// Run runs the process in a writable layer over the parent, then stores
// the difference as a layer of its own (normalized, with times clamped
// when an epoch is set) and removes the writable layer.
func (x *storeExecutor) Run(ctx context.Context, op *RunOp) (_ *Layer, err error) {
	if x.runner == nil {
		return nil, errors.New("RUN needs a process runner, and none is available")
	}
	st := x.s.Storage()
	rwID := newID()
	le, err := x.leases.acquire("rw", rwID)
	if err != nil {
		return nil, fmt.Errorf("recording the build layer: %w", err)
	}
	defer le.release()
	rw, err := st.CreateLayer(rwID, op.Parent, nil, "", true, nil)
	if err != nil {
		return nil, fmt.Errorf("creating the build layer: %w", err)
	}
	defer func() {
		if _, derr := st.Unmount(rw.ID, true); derr != nil && !errors.Is(derr, storage.ErrLayerNotMounted) && err == nil {
			err = derr
		}
		if derr := st.DeleteLayer(rw.ID); derr != nil && err == nil {
			err = fmt.Errorf("removing the build layer: %w", derr)
		}
	}()
	rootfs, err := st.Mount(rw.ID, "")
	if err != nil {
		return nil, fmt.Errorf("mounting the build layer: %w", err)
	}
	proc, cleanup, err := x.prepare(rootfs, op)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return nil, err
	}
	runErr := x.runner.RunProcess(ctx, proc)
	cleanup()
	cleanup = nil
	if runErr != nil {
		return nil, runErr
	}
	if _, err := st.Unmount(rw.ID, false); err != nil {
		return nil, fmt.Errorf("unmounting the build layer: %w", err)
	}
	// The diff reader holds the layer store's lock, which storing a layer
	// needs: spool the (normalized) diff to a file first.
	spool, err := os.CreateTemp(x.tmp, "diff-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	diff, err := st.Diff(op.Parent, rw.ID, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the changes of the step: %w", err)
	}
	err = normalizeTar(diff, spool, op.Epoch)
	if cerr := diff.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	l, err := x.s.PutLayer(op.Parent, spool)
	if err != nil {
		return nil, err
	}
	return &Layer{ID: l.ID, DiffID: l.DiffID, Size: l.Size}, nil
}

// normalizeTar rewrites a layer diff so that equal trees give equal bytes:
// no user or group names, no access or change times, no overlay xattrs,
// modification times clamped to the epoch when one is set.
func normalizeTar(r io.Reader, w io.Writer, epoch *time.Time) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the layer diff: %w", err)
		}
		h.Uname, h.Gname = "", ""
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		h.ModTime = h.ModTime.Truncate(time.Second)
		if epoch != nil && h.ModTime.After(*epoch) {
			h.ModTime = *epoch
		}
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.trusted.overlay.") || strings.HasPrefix(k, "SCHILY.xattr.user.overlay.") ||
				k == "atime" || k == "ctime" {
				delete(h.PAXRecords, k)
			}
		}
		// The tar writer writes h.Xattrs back into PAX records: drop the
		// overlay's own attributes there too.
		for k := range h.Xattrs { //nolint:staticcheck // the reader fills both
			if strings.HasPrefix(k, "trusted.overlay.") || strings.HasPrefix(k, "user.overlay.") {
				delete(h.Xattrs, k) //nolint:staticcheck
			}
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// prepare resolves the user, creates the working directory and the mount
// points the process needs, and returns a cleanup that removes the mount
// points it created (so they never land in the layer).
func (x *storeExecutor) prepare(rootfs string, op *RunOp) (*Process, func(), error) {
	spec := op.Spec
	var created []string
	var releases []func()
	cleanup := func() {
		for i := len(created) - 1; i >= 0; i-- {
			_ = os.Remove(created[i])
		}
		created = nil
		for _, r := range releases {
			r()
		}
		releases = nil
	}
	mkdirs := func(p string, file bool) (string, error) {
		full, err := securejoin.SecureJoin(rootfs, p)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(rootfs, full)
		cur := rootfs
		parts := strings.Split(rel, string(filepath.Separator))
		for i, part := range parts {
			if part == "." || part == "" {
				continue
			}
			cur = filepath.Join(cur, part)
			if _, err := os.Lstat(cur); err == nil {
				continue
			}
			if file && i == len(parts)-1 {
				f, err := os.OpenFile(cur, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
				if err != nil {
					return "", err
				}
				f.Close()
			} else if err := os.Mkdir(cur, 0o755); err != nil {
				return "", err
			}
			created = append(created, cur)
		}
		return full, nil
	}
	// User and groups from the image's files.
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	passwd, _ := securejoin.SecureJoin(rootfs, "/etc/passwd")
	group, _ := securejoin.SecureJoin(rootfs, "/etc/group")
	u := spec.User
	if u == "" {
		u = "0"
	}
	eu, err := user.GetExecUserPath(u, defaults, passwd, group)
	if err != nil {
		return nil, cleanup, fmt.Errorf("resolving USER %s: %w", spec.User, err)
	}
	env := append([]string{}, spec.Env...)
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+eu.Home)
	}
	env = append(env, spec.ProxyEnv...)
	// The working directory is created (and stays), as docker does.
	wd, err := securejoin.SecureJoin(rootfs, spec.Workdir)
	if err != nil {
		return nil, cleanup, err
	}
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return nil, cleanup, fmt.Errorf("creating the working directory %s: %w", spec.Workdir, err)
	}
	proc := &Process{
		Rootfs: rootfs, Args: spec.Args, Env: env, UID: eu.Uid, GID: eu.Gid, Groups: eu.Sgids,
		Cwd: spec.Workdir, Network: spec.Network, Hostname: op.Hostname, Stdout: op.Stdout, Stderr: op.Stdout,
	}
	for _, p := range []string{"/proc", "/dev", "/sys"} {
		if _, err := mkdirs(p, false); err != nil {
			return nil, cleanup, fmt.Errorf("creating %s in the rootfs: %w", p, err)
		}
	}
	for _, p := range []string{"/etc/resolv.conf", "/etc/hosts"} {
		if _, err := mkdirs(p, true); err != nil {
			return nil, cleanup, fmt.Errorf("creating %s in the rootfs: %w", p, err)
		}
	}
	if len(spec.Files) > 0 {
		dir, err := os.MkdirTemp("", "nook-heredoc-")
		if err != nil {
			return nil, cleanup, err
		}
		releases = append(releases, func() { os.RemoveAll(dir) })
		names := make([]string, 0, len(spec.Files))
		for n := range spec.Files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, path.Base(n)), []byte(spec.Files[n]), 0o755); err != nil {
				return nil, cleanup, err
			}
		}
		if _, err := mkdirs("/dev/pipes", false); err != nil {
			return nil, cleanup, err
		}
		proc.Mounts = append(proc.Mounts, ProcMount{Type: "bind", Source: dir, Target: "/dev/pipes", ReadOnly: true})
	}
	for _, m := range op.Mounts {
		switch m.Type {
		case "tmpfs":
			if _, err := mkdirs(m.Target, false); err != nil {
				return nil, cleanup, err
			}
			proc.Mounts = append(proc.Mounts, ProcMount{Type: "tmpfs", Target: m.Target, Size: m.Size})
		case "cache":
			if _, err := mkdirs(m.Target, false); err != nil {
				return nil, cleanup, err
			}
			proc.Mounts = append(proc.Mounts, ProcMount{Type: "bind", Source: m.HostPath, Target: m.Target})
		case "secret":
			if m.HostPath == "" || m.Target == "" {
				continue
			}
			if _, err := mkdirs(m.Target, true); err != nil {
				return nil, cleanup, err
			}
			proc.Mounts = append(proc.Mounts, ProcMount{Type: "bind", Source: m.HostPath, Target: m.Target, ReadOnly: true})
		case "bind":
			src := m.HostPath
			if m.FromLayer != "" {
				p, release, err := x.mount(m.FromLayer)
				if err != nil {
					return nil, cleanup, err
				}
				releases = append(releases, release)
				if src, err = securejoin.SecureJoin(p, m.Source); err != nil {
					return nil, cleanup, err
				}
			}
			fi, err := os.Stat(src)
			if err != nil {
				return nil, cleanup, fmt.Errorf("RUN --mount=type=bind source %s: %w", m.Source, err)
			}
			if _, err := mkdirs(m.Target, !fi.IsDir()); err != nil {
				return nil, cleanup, err
			}
			// A writable bind mount would change the context or the
			// stage; docker discards such writes, so nook mounts it
			// read-only unless rw was asked for, and then gives a copy.
			ro := !m.ReadWrite
			if m.ReadWrite {
				cp, err := copyTree(src)
				if err != nil {
					return nil, cleanup, err
				}
				releases = append(releases, func() { os.RemoveAll(cp) })
				src = cp
			}
			proc.Mounts = append(proc.Mounts, ProcMount{Type: "bind", Source: src, Target: m.Target, ReadOnly: ro})
		}
	}
	return proc, cleanup, nil
}

func hasEnv(env []string, k string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, k+"=") {
			return true
		}
	}
	return false
}

// copyTree copies a file or directory to a temporary place (for a
// writable bind mount whose writes must be discarded).
func copyTree(src string) (string, error) {
	dst, err := os.MkdirTemp("", "nook-bind-")
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		target := filepath.Join(dst, filepath.Base(src))
		if err := copyFile(src, target, fi.Mode()); err != nil {
			return "", err
		}
		return target, nil
	}
	err = filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		switch {
		case info.IsDir():
			return os.MkdirAll(t, info.Mode().Perm()|0o700)
		case info.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, t)
		case info.Mode().IsRegular():
			return copyFile(p, t, info.Mode())
		}
		return nil
	})
	return dst, err
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
