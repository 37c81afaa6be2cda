package builder

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	"go.podman.io/storage/pkg/archive"
)

// copyJob is everything needed to write the layer of one COPY/ADD or
// WORKDIR step as a tar diff.
type copyJob struct {
	spec    *CopySpec
	rootfs  string      // parent's root filesystem ("" for scratch or --link)
	sels    []selection // what the sources selected, in order
	epoch   *time.Time  // clamp times (SOURCE_DATE_EPOCH, --timestamp)
	now     time.Time   // time of created directories when epoch is nil
	mkdir   string      // WORKDIR: the directory to create
	mkUser  string      // WORKDIR: its owner (USER)
	wildcat bool        // a wildcard was used: the destination is a directory
}

// owner is a uid/gid pair; nil means "keep the source's".
type owner struct{ uid, gid int }

// rootPath finds p (absolute, in the image) inside rootfs, following
// symlinks within it. It returns the path relative to the rootfs root.
func rootPath(rootfs, p string) (string, error) {
	if rootfs == "" {
		return strings.TrimPrefix(path.Clean("/"+p), "/"), nil
	}
	full, err := securejoin.SecureJoin(rootfs, p)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(rootfs, full)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "", nil
	}
	return filepath.ToSlash(rel), nil
}

// resolveChown turns --chown's value into ids, reading the image's
// /etc/passwd and /etc/group for names. A uid without a group uses the
// uid as gid, as docker does.
func resolveChown(rootfs, spec string) (*owner, error) {
	if spec == "" {
		return nil, nil
	}
	u, g, hasGroup := strings.Cut(spec, ":")
	num := func(s string) (int, bool) {
		n, err := strconv.ParseUint(s, 10, 31)
		return int(n), err == nil
	}
	lookup := func(file string, name string, users bool) (int, error) {
		if rootfs == "" {
			return 0, fmt.Errorf("unable to find %s %q: the image has no %s", map[bool]string{true: "user", false: "group"}[users], name, file)
		}
		p, err := securejoin.SecureJoin(rootfs, file)
		if err != nil {
			return 0, err
		}
		if users {
			list, err := user.ParsePasswdFileFilter(p, func(x user.User) bool { return x.Name == name })
			if err != nil || len(list) == 0 {
				return 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file", name)
			}
			return list[0].Uid, nil
		}
		list, err := user.ParseGroupFileFilter(p, func(x user.Group) bool { return x.Name == name })
		if err != nil || len(list) == 0 {
			return 0, fmt.Errorf("unable to find group %s: no matching entries in group file", name)
		}
		return list[0].Gid, nil
	}
	o := &owner{}
	var err error
	if n, ok := num(u); ok {
		o.uid = n
	} else if o.uid, err = lookup("/etc/passwd", u, true); err != nil {
		return nil, err
	}
	o.gid = o.uid
	if hasGroup && g != "" {
		if n, ok := num(g); ok {
			o.gid = n
		} else if o.gid, err = lookup("/etc/group", g, false); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// tarWriter writes the layer with the header rules shared by all steps.
type tarWriter struct {
	tw      *tar.Writer
	epoch   *time.Time
	written map[string]bool
}

func (w *tarWriter) clamp(t time.Time) time.Time {
	t = t.Truncate(time.Second)
	if w.epoch != nil && t.After(*w.epoch) {
		return *w.epoch
	}
	return t
}

func (w *tarWriter) header(h *tar.Header) error {
	name := strings.TrimSuffix(h.Name, "/")
	if name == "" || name == "." {
		return nil
	}
	if w.written[name] {
		return nil
	}
	w.written[name] = true
	h.ModTime = w.clamp(h.ModTime)
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	h.Uname, h.Gname = "", ""
	h.Format = tar.FormatPAX
	if h.Typeflag == tar.TypeDir {
		h.Name = name + "/"
	}
	return w.tw.WriteHeader(h)
}

// existingDir gives the header of a directory that exists in the parent
// (so that writing into it keeps its metadata), or nil.
func existingDir(rootfs, rel string) *tar.Header {
	if rootfs == "" {
		return nil
	}
	fi, err := os.Lstat(filepath.Join(rootfs, rel))
	if err != nil || !fi.IsDir() {
		return nil
	}
	uid, gid := ownerOf(fi)
	return &tar.Header{Typeflag: tar.TypeDir, Name: rel, Mode: int64(modeBits(fi.Mode())), Uid: uid, Gid: gid, ModTime: fi.ModTime()}
}

func modeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// parents writes the directories above rel (a path relative to the root
// of the image), existing ones with their metadata, missing ones new.
func (j *copyJob) parents(w *tarWriter, rel string, newOwner owner) error {
	dir := path.Dir(rel)
	if dir == "." || dir == "/" || dir == "" {
		return nil
	}
	var chain []string
	for d := dir; d != "." && d != "/" && d != ""; d = path.Dir(d) {
		chain = append([]string{d}, chain...)
	}
	for _, d := range chain {
		if w.written[d] {
			continue
		}
		h := existingDir(j.rootfs, d)
		if h == nil {
			h = &tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, Uid: newOwner.uid, Gid: newOwner.gid, ModTime: j.created()}
		}
		if err := w.header(h); err != nil {
			return err
		}
	}
	return nil
}

func (j *copyJob) created() time.Time {
	if j.epoch != nil {
		return *j.epoch
	}
	return j.now
}

func (j *copyJob) chmod() (uint32, bool) {
	if j.spec == nil || j.spec.Chmod == "" {
		return 0, false
	}
	v, _ := strconv.ParseUint(j.spec.Chmod, 8, 32)
	return uint32(v), true
}

// write produces the layer's tar.
func (j *copyJob) write(out io.Writer) error {
	w := &tarWriter{tw: tar.NewWriter(out), epoch: j.epoch, written: map[string]bool{}}
	if j.mkdir != "" {
		if err := j.writeMkdir(w); err != nil {
			return err
		}
		return w.tw.Close()
	}
	chown, err := resolveChown(j.rootfs, j.spec.Chown)
	if err != nil {
		return err
	}
	newOwner := owner{}
	if chown != nil {
		newOwner = *chown
	}
	dest := j.spec.Dest
	destIsDir := strings.HasSuffix(dest, "/") || len(j.sels) > 1 || j.wildcat
	destRel, err := rootPath(j.rootfs, dest)
	if err != nil {
		return fmt.Errorf("resolving %s in the image: %w", dest, err)
	}
	if !destIsDir && existingDir(j.rootfs, destRel) != nil {
		destIsDir = true
	}
	for _, sel := range j.sels {
		selDest := destRel
		if j.spec.Parents && sel.rel != "" && sel.rel != "." {
			// COPY --parents keeps the source's directories.
			if sel.dirContents {
				selDest = path.Join(destRel, sel.rel)
			} else {
				selDest = path.Join(destRel, path.Dir(sel.rel))
			}
		}
		if sel.dirContents {
			destRel := selDest
			if err := j.parents(w, destRel+"/x", newOwner); err != nil {
				return err
			}
			for _, e := range sel.entries {
				target := destRel
				if e.rel != "" {
					target = path.Join(destRel, e.rel)
				} else if h := existingDir(j.rootfs, destRel); h != nil {
					if err := w.header(h); err != nil {
						return err
					}
					continue
				}
				if err := j.entry(w, sel.src, e, target, chown); err != nil {
					return err
				}
			}
			continue
		}
		for _, e := range sel.entries {
			target := destRel
			if destIsDir || j.spec.Parents {
				target = path.Join(selDest, sel.name)
			}
			if err := j.parents(w, target, newOwner); err != nil {
				return err
			}
			if j.spec.Add && (j.spec.Unpack == nil || *j.spec.Unpack) && e.info.Mode().IsRegular() && !e.remote {
				ok, err := j.unpack(w, e, destRel, chown)
				if err != nil {
					return err
				}
				if ok {
					continue
				}
			}
			if err := j.entry(w, sel.src, e, target, chown); err != nil {
				return err
			}
		}
	}
	return w.tw.Close()
}

func (j *copyJob) writeMkdir(w *tarWriter) error {
	rel, err := rootPath(j.rootfs, j.mkdir)
	if err != nil {
		return err
	}
	if rel == "" {
		return nil
	}
	o := owner{}
	if j.mkUser != "" {
		spec := j.mkUser
		// WORKDIR creates the directory for USER; a user that cannot be
		// resolved leaves it root-owned, as docker does.
		if c, err := resolveChown(j.rootfs, spec); err == nil && c != nil {
			o = *c
		}
	}
	if err := j.parents(w, rel, o); err != nil {
		return err
	}
	if existingDir(j.rootfs, rel) != nil {
		return nil
	}
	return w.header(&tar.Header{Typeflag: tar.TypeDir, Name: rel, Mode: 0o755, Uid: o.uid, Gid: o.gid, ModTime: j.created()})
}

// entry writes one selected file at target (relative to the image root).
func (j *copyJob) entry(w *tarWriter, src *source, e entry, target string, chown *owner) error {
	fi := e.info
	h := &tar.Header{Name: target, Mode: int64(modeBits(fi.Mode())), ModTime: fi.ModTime()}
	if !src.context {
		h.Uid, h.Gid = ownerOf(fi)
	}
	if chown != nil {
		h.Uid, h.Gid = chown.uid, chown.gid
	}
	if m, ok := j.chmod(); ok {
		h.Mode = int64(m)
	}
	switch {
	case fi.IsDir():
		h.Typeflag = tar.TypeDir
		return w.header(h)
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(e.abs)
		if err != nil {
			return err
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, t
		if _, ok := j.chmod(); ok {
			h.Mode = 0o777
		}
		return w.header(h)
	case fi.Mode().IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		f, err := os.Open(e.abs)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := w.header(h); err != nil {
			return err
		}
		n, err := io.Copy(w.tw, f)
		if err != nil {
			return fmt.Errorf("copying %s: %w", e.abs, err)
		}
		if n != fi.Size() {
			return fmt.Errorf("copying %s: it changed size during the build", e.abs)
		}
		return nil
	case fi.Mode()&fs.ModeNamedPipe != 0:
		h.Typeflag = tar.TypeFifo
		return w.header(h)
	default:
		// Sockets and device nodes are not copied (rootless cannot
		// create devices anyway).
		return nil
	}
}

// unpack extracts a local archive given to ADD into destRel. It reports
// false when the file is not an archive (it is then copied as is).
func (j *copyJob) unpack(w *tarWriter, e entry, destRel string, chown *owner) (bool, error) {
	f, err := os.Open(e.abs)
	if err != nil {
		return false, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	head, _ := br.Peek(10)
	comp := archive.DetectCompression(head)
	var r io.Reader = br
	if comp != archive.Uncompressed {
		dr, err := archive.DecompressStream(br)
		if err != nil {
			return false, nil
		}
		defer dr.Close()
		r = dr
	}
	tr := tar.NewReader(r)
	first := true
	for {
		h, err := tr.Next()
		if err == io.EOF {
			if first {
				return false, nil
			}
			return true, nil
		}
		if err != nil {
			if first {
				return false, nil // not a tar: copy the file itself
			}
			return true, fmt.Errorf("extracting %s: %w", e.abs, err)
		}
		if first {
			if err := j.parents(w, path.Join(destRel, "x"), owner{}); err != nil {
				return true, err
			}
			if h := existingDir(j.rootfs, destRel); h == nil && destRel != "" {
				if err := w.header(&tar.Header{Typeflag: tar.TypeDir, Name: destRel, Mode: 0o755, ModTime: j.created()}); err != nil {
					return true, err
				}
			}
		}
		first = false
		name := path.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		if strings.Contains(h.Name, "..") && strings.Contains(path.Clean(h.Name), "..") {
			return true, fmt.Errorf("extracting %s: entry %q points outside the destination", e.abs, h.Name)
		}
		nh := *h
		nh.Name = path.Join(destRel, name)
		if h.Typeflag == tar.TypeLink {
			nh.Linkname = path.Join(destRel, path.Clean("/"+h.Linkname))
		}
		if chown != nil {
			nh.Uid, nh.Gid = chown.uid, chown.gid
		}
		nh.PAXRecords = nil
		if err := w.header(&nh); err != nil {
			return true, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(w.tw, tr); err != nil {
				return true, fmt.Errorf("extracting %s: %w", e.abs, err)
			}
		}
	}
}

// selectionsFor expands every source of a copy.
func selectionsFor(src *source, cs *CopySpec) ([]selection, bool, error) {
	var out []selection
	wild := false
	for _, s := range cs.Sources {
		if isURL(s) {
			continue
		}
		if hasWildcard(s) {
			wild = true
		}
		sels, err := src.selectSource(s)
		if err != nil {
			return nil, false, err
		}
		if cs.Excludes != nil {
			sels, err = excludeFrom(sels, cs.Excludes)
			if err != nil {
				return nil, false, err
			}
		}
		out = append(out, sels...)
	}
	return out, wild, nil
}

// excludeFrom applies COPY --exclude patterns to selected entries.
func excludeFrom(sels []selection, patterns []string) ([]selection, error) {
	for i := range sels {
		var keep []entry
		for _, e := range sels[i].entries {
			name := e.rel
			if name == "" {
				name = sels[i].name
			}
			skip := false
			for _, p := range patterns {
				ok, err := path.Match(p, name)
				if err != nil {
					return nil, fmt.Errorf("invalid --exclude pattern %q: %w", p, err)
				}
				if ok || strings.HasPrefix(name, strings.TrimSuffix(p, "/")+"/") {
					skip = true
				}
			}
			if !skip {
				keep = append(keep, e)
			}
		}
		sels[i].entries = keep
	}
	return sels, nil
}
