package runner

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/chrootarchive"
	"go.podman.io/storage/pkg/idtools"
	"golang.org/x/sys/unix"
)

// `nook cp` works on the container's file system as nook sees it from
// outside: its writable layer mounted through the store (so it works the
// same for running and stopped containers) plus the sources of its bind
// mounts and volumes. Paths are resolved in the container's scope with
// securejoin, so that no symbolic link in the container leads to a host
// file; the tar streams are then read and unpacked by a helper process
// chrooted into the container's root (storage's chrootarchive), so that
// a container racing to swap a directory for a link gains nothing. tmpfs
// mounts are not reached (docker's cp has the same limit).

// CopyOptions are docker cp's flags.
type CopyOptions struct {
	// Archive (-a): files copied into the container belong to the
	// container's user and group; without it they keep the owners the
	// archive gives them.
	Archive bool
	// FollowLink (-L): copy what a symbolic link at the source points to.
	FollowLink bool
	// Stdin is the tar stream for a source of "-"; Stdout receives the tar
	// stream for a destination of "-".
	Stdin  io.Reader
	Stdout io.Writer
}

// PathStat describes a path in a container (docker's ContainerPathStat).
type PathStat struct {
	Name       string      `json:"name"`
	Size       int64       `json:"size"`
	Mode       os.FileMode `json:"mode"`
	Mtime      time.Time   `json:"mtime"`
	LinkTarget string      `json:"linkTarget"` // absolute, in the container, fully resolved
}

// containerFiles is a container's file system, mounted on the host.
type containerFiles struct {
	c        *Container
	rootfs   string
	binds    []specs.Mount // bind mounts and volumes, shallowest first
	readOnly bool          // --read-only
	release  func()
}

// where is a resolved container path.
type where struct {
	host  string // the host path
	root  string // the directory it lies under (the chroot of the helper)
	cpath string // the path in the container
	bind  *specs.Mount
}

// mountFiles mounts the container's layer (again, for a running one:
// storage counts mounts) until release.
func (r *Runtime) mountFiles(c *Container) (*containerFiles, error) {
	st := r.Store.Storage()
	rootfs, err := st.Mount(c.ID, "")
	if err != nil {
		return nil, fmt.Errorf("mounting the file system of container %s: %w", c.Name, err)
	}
	f := &containerFiles{c: c, rootfs: rootfs, readOnly: c.Options.ReadOnly, release: func() { _, _ = st.Unmount(c.ID, false) }}
	if spec, err := c.Spec(); err == nil {
		for _, m := range spec.Mounts {
			if m.Type == "bind" && filepath.IsAbs(m.Source) {
				f.binds = append(f.binds, m)
			}
		}
	}
	sort.SliceStable(f.binds, func(i, j int) bool { return depth(f.binds[i].Destination) < depth(f.binds[j].Destination) })
	return f, nil
}

// bindAt is the deepest bind mount that contains the container path p.
func (f *containerFiles) bindAt(p string) *specs.Mount {
	var found *specs.Mount
	for i := range f.binds {
		d := path.Clean(f.binds[i].Destination)
		if p == d || strings.HasPrefix(p, d+"/") || d == "/" {
			found = &f.binds[i]
		}
	}
	return found
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// resolve follows every symbolic link of p (an absolute container path)
// in the container's scope and says where it is on the host.
func (f *containerFiles) resolve(p string) (where, error) {
	p = path.Clean("/" + p)
	host, err := securejoin.SecureJoin(f.rootfs, p)
	if err != nil {
		return where{}, fmt.Errorf("resolving %s in container %s: %w", p, f.c.Name, err)
	}
	rel, err := filepath.Rel(f.rootfs, host)
	if err != nil {
		return where{}, err
	}
	cpath := path.Clean("/" + filepath.ToSlash(rel))
	return f.inBind(cpath, host)
}

// inBind redirects a container path that lies on a bind mount or volume
// to that mount's source (links in it resolve within it).
func (f *containerFiles) inBind(cpath, host string) (where, error) {
	m := f.bindAt(cpath)
	if m == nil {
		return where{host: host, root: f.rootfs, cpath: cpath}, nil
	}
	dest := path.Clean(m.Destination)
	rest := strings.TrimPrefix(strings.TrimPrefix(cpath, dest), "/")
	if !isDir(m.Source) {
		if rest != "" {
			return where{}, userErr("%s: not a directory", cpath)
		}
		return where{host: m.Source, root: filepath.Dir(m.Source), cpath: cpath, bind: m}, nil
	}
	h, err := securejoin.SecureJoin(m.Source, rest)
	if err != nil {
		return where{}, fmt.Errorf("resolving %s in container %s: %w", cpath, f.c.Name, err)
	}
	r, _ := filepath.Rel(m.Source, h)
	return where{host: h, root: m.Source, cpath: path.Join(dest, filepath.ToSlash(r)), bind: m}, nil
}

// resolveParent resolves p's directory and keeps its last element as it
// is (a link there is the link itself), as docker's ResolvePath does.
func (f *containerFiles) resolveParent(p string) (where, string, error) {
	abs := archive.PreserveTrailingDotOrSeparator(path.Join("/", p), p)
	dir, base := path.Split(abs)
	w, err := f.resolve(dir)
	if err != nil {
		return where{}, "", err
	}
	if base == "" || base == "." {
		// "dir/" or "dir/.": the directory itself.
		w.host = w.host + "/" + base
		return w, abs, nil
	}
	cpath := path.Join(w.cpath, base)
	if m := f.bindAt(cpath); m != nil && path.Clean(m.Destination) == cpath {
		// The element is a mount point: the mount's source.
		w2, err := f.inBind(cpath, "")
		return w2, abs, err
	}
	w.host = filepath.Join(w.host, base)
	w.cpath = cpath
	return w, abs, nil
}

func (f *containerFiles) notFound(p string) error {
	return userErr("could not find the file %s in container %s", p, f.c.Name)
}

// stat is docker's StatPath: the element itself (not followed), with the
// fully resolved target of a link.
func (f *containerFiles) stat(p string) (*PathStat, where, string, error) {
	w, abs, err := f.resolveParent(p)
	if err != nil {
		return nil, w, abs, err
	}
	fi, err := os.Lstat(w.host)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, w, abs, f.notFound(p)
		}
		if errors.Is(err, fs.ErrInvalid) || strings.Contains(err.Error(), "not a directory") {
			return nil, w, abs, userErr("%s in container %s: not a directory", p, f.c.Name)
		}
		return nil, w, abs, err
	}
	st := &PathStat{Name: path.Base(abs), Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime()}
	if fi.Mode()&os.ModeSymlink != 0 {
		t, err := f.resolve(abs)
		if err != nil {
			return nil, w, abs, err
		}
		st.LinkTarget = t.cpath
	}
	return st, w, abs, nil
}

// StatPath describes a path in a container.
func (r *Runtime) StatPath(c *Container, p string) (*PathStat, error) {
	f, err := r.mountFiles(c)
	if err != nil {
		return nil, err
	}
	defer f.release()
	st, _, _, err := f.stat(p)
	return st, err
}

type releaseReader struct {
	io.ReadCloser
	release func()
}

func (r *releaseReader) Close() error {
	err := r.ReadCloser.Close()
	r.release()
	return err
}

// archivePath is docker's ArchivePath: a tar of p whose entries start
// with p's own name (a directory's with its name too, "dir/." with its
// content only).
func (f *containerFiles) archivePath(p string) (io.ReadCloser, *PathStat, error) {
	st, w, abs, err := f.stat(p)
	if err != nil {
		return nil, nil, err
	}
	if st.Mode&os.ModeSymlink != 0 {
		// storage's walker follows a link it is asked for by name: the
		// link itself is one header, read through a descriptor of its
		// directory opened safely in the root.
		rc, err := containerLinkTar(w, path.Base(abs))
		return rc, st, err
	}
	resolved := filepath.Clean(w.host)
	if filepath.Base(w.host) == "." {
		resolved += "/."
	}
	sourceDir, sourceBase := resolved, "."
	if !st.Mode.IsDir() {
		sourceDir, sourceBase = filepath.Split(resolved)
	}
	opts := &archive.TarOptions{
		Compression:      archive.Uncompressed,
		IncludeFiles:     []string{sourceBase},
		IncludeSourceDir: true,
		RebaseNames:      map[string]string{sourceBase: path.Base(abs)},
	}
	rc, err := chrootarchive.Tar(sourceDir, opts, w.root)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s from container %s: %w", p, f.c.Name, err)
	}
	return rc, st, nil
}

// ArchivePath streams a tar of a path in a container, as docker's archive
// API does.
func (r *Runtime) ArchivePath(c *Container, p string) (io.ReadCloser, *PathStat, error) {
	f, err := r.mountFiles(c)
	if err != nil {
		return nil, nil, err
	}
	rc, st, err := f.archivePath(p)
	if err != nil {
		f.release()
		return nil, nil, err
	}
	return &releaseReader{ReadCloser: rc, release: f.release}, st, nil
}

// extract unpacks a tar into the directory p of the container (links
// followed, the last one too, in the container's scope).
func (f *containerFiles) extract(p string, content io.Reader, o CopyOptions, rootless bool) error {
	abs := archive.PreserveTrailingDotOrSeparator(path.Join("/", p), p)
	w, err := f.resolve(abs)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(w.host)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return f.notFound(p)
		}
		return err
	}
	if !fi.IsDir() {
		return userErr("extraction point %s in container %s is not a directory", p, f.c.Name)
	}
	if w.bind != nil {
		for _, opt := range w.bind.Options {
			if opt == "ro" {
				return userErr("copying to %s in container %s: the mounted volume is marked read-only", p, f.c.Name)
			}
		}
	} else if f.readOnly {
		return userErr("copying to %s in container %s: the container's root file system is marked read-only", p, f.c.Name)
	}
	opts := &archive.TarOptions{NoOverwriteDirNonDir: true, InUserNS: rootless}
	if o.Archive {
		if spec, err := f.c.Spec(); err == nil && spec.Process != nil {
			opts.ChownOpts = &idtools.IDPair{UID: int(spec.Process.User.UID), GID: int(spec.Process.User.GID)}
		}
	}
	if err := chrootarchive.UntarWithRoot(content, w.host, opts, w.root); err != nil {
		return fmt.Errorf("copying to %s in container %s: %w", p, f.c.Name, err)
	}
	return nil
}

// absLocal makes a host path absolute, keeping a trailing "/" or "/.".
func absLocal(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return archive.PreserveTrailingDotOrSeparator(a, p), nil
}

// CopyFromContainer copies src (a path in the container) to dst on the
// host, or as a tar stream to o.Stdout when dst is "-", with docker cp's
// rules for trailing slashes, directories and links.
func (r *Runtime) CopyFromContainer(c *Container, src, dst string, o CopyOptions) error {
	if dst != "-" {
		var err error
		if dst, err = absLocal(dst); err != nil {
			return err
		}
		if err := validateOutputPath(dst); err != nil {
			return err
		}
	}
	f, err := r.mountFiles(c)
	if err != nil {
		return err
	}
	defer f.release()
	rebaseName := ""
	if o.FollowLink {
		if st, _, _, err := f.stat(src); err == nil && st.Mode&os.ModeSymlink != 0 {
			var target string
			target, rebaseName = archive.GetRebaseName(src, st.LinkTarget)
			src = target
		}
	}
	content, st, err := f.archivePath(src)
	if err != nil {
		return err
	}
	defer content.Close()
	if dst == "-" {
		if _, err := io.Copy(o.Stdout, content); err != nil {
			return fmt.Errorf("writing the archive: %w", err)
		}
		return nil
	}
	srcInfo := archive.CopyInfo{Path: src, Exists: true, IsDir: st.Mode.IsDir(), RebaseName: rebaseName}
	pre := io.Reader(content)
	if rebaseName != "" {
		_, srcBase := archive.SplitPathDirEntry(srcInfo.Path)
		rc := archive.RebaseArchiveEntries(content, srcBase, rebaseName)
		defer rc.Close()
		pre = rc
	}
	dstInfo, err := archive.CopyInfoDestinationPath(dst)
	if err != nil {
		return err
	}
	dstDir, prepared, err := archive.PrepareArchiveCopy(pre, srcInfo, dstInfo)
	if err != nil {
		return copyError(err)
	}
	defer prepared.Close()
	// Unpacked in a chroot of the destination: nothing the container
	// put in the archive lands outside it.
	if err := chrootarchive.Untar(prepared, dstDir, &archive.TarOptions{NoLchown: true, NoOverwriteDirNonDir: true, InUserNS: r.Rootless}); err != nil {
		return fmt.Errorf("copying to %s: %w", dst, err)
	}
	return nil
}

// CopyToContainer copies src on the host (or a tar stream from o.Stdin
// when src is "-") to dst in the container, with docker cp's rules.
func (r *Runtime) CopyToContainer(c *Container, src, dst string, o CopyOptions) error {
	f, err := r.mountFiles(c)
	if err != nil {
		return err
	}
	defer f.release()
	dstInfo := archive.CopyInfo{Path: dst}
	st, _, _, err := f.stat(dst)
	if err == nil && st.Mode&os.ModeSymlink != 0 {
		dstInfo.Path = st.LinkTarget
		st, _, _, err = f.stat(st.LinkTarget)
	}
	if err == nil {
		if !st.Mode.IsDir() && !st.Mode.IsRegular() {
			return userErr("destination %q must be a directory or a regular file", c.Name+":"+dst)
		}
		dstInfo.Exists, dstInfo.IsDir = true, st.Mode.IsDir()
	}
	var content io.Reader
	var target string
	if src == "-" {
		if !dstInfo.IsDir {
			return userErr("destination %q must be a directory", c.Name+":"+dst)
		}
		content, target = o.Stdin, dstInfo.Path
	} else {
		if src, err = absLocal(src); err != nil {
			return err
		}
		srcInfo, err := archive.CopyInfoSourcePath(src, o.FollowLink)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return userErr("could not find the file %s", src)
			}
			return err
		}
		var srcArchive io.ReadCloser
		if fi, err := os.Lstat(srcInfo.Path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			srcArchive, err = hostLinkTar(srcInfo)
			if err != nil {
				return err
			}
		} else if srcArchive, err = archive.TarResource(srcInfo); err != nil {
			return err
		}
		defer srcArchive.Close()
		dstDir, prepared, err := archive.PrepareArchiveCopy(srcArchive, srcInfo, dstInfo)
		if err != nil {
			return copyError(err)
		}
		defer prepared.Close()
		content, target = prepared, dstDir
	}
	return f.extract(target, content, o, r.Rootless)
}

// copyError words archive's sentinel errors as docker does.
func copyError(err error) error {
	switch {
	case errors.Is(err, archive.ErrDirNotExists):
		return userErr("the destination directory must exist: %v", err)
	case errors.Is(err, archive.ErrCannotCopyDir):
		return userErr("cannot copy a directory to a file")
	case errors.Is(err, archive.ErrNotDirectory):
		return userErr("not a directory: %v", err)
	case errors.Is(err, archive.ErrInvalidCopySource):
		return userErr("invalid copy source: %v", err)
	}
	return err
}

// validateOutputPath is docker's check of a local destination: its
// directory exists, and it is a directory or a regular file if it exists.
func validateOutputPath(p string) error {
	dir := filepath.Dir(filepath.Clean(p))
	if dir != "" && dir != "." {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return userErr("invalid output path: directory %q does not exist", dir)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil // created by the copy
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		return userErr("invalid output path: %q must be a directory or a regular file", p)
	}
	return nil
}

// containerLinkTar is a tar of the link at w, named name.
func containerLinkTar(w where, name string) (io.ReadCloser, error) {
	rel, err := filepath.Rel(w.root, filepath.Dir(filepath.Clean(w.host)))
	if err != nil {
		return nil, err
	}
	dir, err := pathrs.OpenInRoot(w.root, rel)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", filepath.Dir(w.cpath), err)
	}
	defer dir.Close()
	base := filepath.Base(filepath.Clean(w.host))
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fmt.Errorf("reading the link %s: %w", w.cpath, err)
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(dir.Fd()), base, buf)
	if err != nil {
		return nil, fmt.Errorf("reading the link %s: %w", w.cpath, err)
	}
	return linkTar(&tar.Header{
		Typeflag: tar.TypeSymlink, Name: name, Linkname: string(buf[:n]), Mode: int64(st.Mode & 0o7777),
		Uid: int(st.Uid), Gid: int(st.Gid), ModTime: time.Unix(st.Mtim.Unix()),
	})
}

// hostLinkTar is a tar of a link on the host (cp without -L).
func hostLinkTar(src archive.CopyInfo) (io.ReadCloser, error) {
	fi, err := os.Lstat(src.Path)
	if err != nil {
		return nil, err
	}
	target, err := os.Readlink(src.Path)
	if err != nil {
		return nil, err
	}
	h, err := tar.FileInfoHeader(fi, target)
	if err != nil {
		return nil, err
	}
	h.Uname, h.Gname = "", ""
	h.Name = filepath.Base(src.Path)
	if src.RebaseName != "" {
		h.Name = src.RebaseName
	}
	return linkTar(h)
}

func linkTar(h *tar.Header) (io.ReadCloser, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(h); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}
