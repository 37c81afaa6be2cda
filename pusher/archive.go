package pusher

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"

	"github.com/nook-containers/nook/store"
)

// Archive formats.
const (
	DockerArchive = "docker-archive"
	OCIArchive    = "oci-archive"
	OCIDir        = "oci-dir"
)

// Annotations naming an image in an OCI layout.
const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// maxArchiveJSON bounds manifest.json, index.json, manifests and configs
// read from an archive.
const maxArchiveJSON = 32 << 20

// SaveOptions say what Save writes.
type SaveOptions struct {
	// Format is docker-archive (default), oci-archive or oci-dir.
	Format string
	// Output receives the archive (docker-archive, oci-archive).
	Output io.Writer
	// Dir is the OCI layout directory (oci-dir); created if needed, added
	// to if it exists.
	Dir string
}

// savedImage is a stored image as an archive sees it: uncompressed layers.
type savedImage struct {
	img    *store.Image
	st     storage.Store
	name   string // fully qualified name to record, or ""
	layers []*storage.Layer
	raw    []byte // OCI manifest with uncompressed layers
	m      *v1.Manifest
}

// Save writes images (names or IDs) to an archive.
func Save(ctx context.Context, s *store.Store, refs []string, o SaveOptions) error {
	if len(refs) == 0 {
		return errors.New("save needs at least one image")
	}
	var imgs []*savedImage
	for _, r := range refs {
		img, err := s.Lookup(r)
		if err != nil {
			return err
		}
		si, err := newSavedImage(s, img)
		if err != nil {
			return err
		}
		if looksLikeName(r, img) {
			if n, err := store.NormalizeName(r); err == nil {
				if _, dig := n.(reference.Digested); !dig {
					si.name = n.String()
				}
			}
		}
		imgs = append(imgs, si)
	}
	switch o.Format {
	case "", DockerArchive:
		refToImage := map[name.Reference]v1.Image{}
		for i, si := range imgs {
			var ref name.Reference
			var err error
			if si.name != "" {
				ref, err = name.ParseReference(si.name)
			} else {
				// Untagged: keyed by digest, written without RepoTags.
				ref, err = name.NewDigest(fmt.Sprintf("untagged/image%d@sha256:%s", i, si.img.ID))
			}
			if err != nil {
				return fmt.Errorf("naming %s in the archive: %w", si.name, err)
			}
			refToImage[ref] = si
		}
		if err := tarball.MultiRefWrite(refToImage, o.Output); err != nil {
			return fmt.Errorf("writing the docker archive: %w", err)
		}
		return nil
	case OCIArchive:
		return writeOCIArchive(ctx, o.Output, imgs)
	case OCIDir:
		if o.Dir == "" {
			return errors.New("oci-dir needs a directory")
		}
		p, err := layout.FromPath(o.Dir)
		if err != nil {
			if p, err = layout.Write(o.Dir, empty.Index); err != nil {
				return fmt.Errorf("creating the OCI layout %s: %w", o.Dir, err)
			}
		}
		for _, si := range imgs {
			var opts []layout.Option
			if si.name != "" {
				opts = append(opts, layout.WithAnnotations(map[string]string{annotationRefName: si.name, annotationContainerdName: si.name}))
			}
			if err := p.AppendImage(si, opts...); err != nil {
				return fmt.Errorf("writing %s to %s: %w", store.ShortID(si.img.ID), o.Dir, err)
			}
		}
		return nil
	}
	return fmt.Errorf("invalid format %q: use docker-archive, oci-archive or oci-dir", o.Format)
}

func newSavedImage(s *store.Store, img *store.Image) (*savedImage, error) {
	chain, err := s.LayerChain(img.TopLayer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.OCIConfig()
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(chain) {
		return nil, fmt.Errorf("image %s is inconsistent: %d layers stored, %d diff IDs in its configuration", store.ShortID(img.ID), len(chain), len(cfg.RootFS.DiffIDs))
	}
	cd, _ := v1.NewHash(digest.FromBytes(img.Config).String())
	m := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cd, Size: int64(len(img.Config))},
		Layers:        []v1.Descriptor{},
	}
	for _, l := range chain {
		h, err := v1.NewHash(l.UncompressedDigest.String())
		if err != nil {
			return nil, fmt.Errorf("layer %s has no diff ID: %w", store.ShortID(l.ID), err)
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Digest: h, Size: l.UncompressedSize})
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &savedImage{img: img, st: s.Storage(), layers: chain, raw: raw, m: m}, nil
}

// savedImage implements v1.Image for ggcr's archive writers.

func (si *savedImage) Layers() ([]v1.Layer, error) {
	out := make([]v1.Layer, len(si.layers))
	for i, l := range si.layers {
		out[i] = &savedLayer{st: si.st, l: l, desc: si.m.Layers[i]}
	}
	return out, nil
}
func (si *savedImage) MediaType() (types.MediaType, error) { return si.m.MediaType, nil }
func (si *savedImage) Size() (int64, error)                { return int64(len(si.raw)), nil }
func (si *savedImage) ConfigName() (v1.Hash, error)        { return si.m.Config.Digest, nil }
func (si *savedImage) ConfigFile() (*v1.ConfigFile, error) { return si.img.OCIConfig() }
func (si *savedImage) RawConfigFile() ([]byte, error)      { return si.img.Config, nil }
func (si *savedImage) Digest() (v1.Hash, error)            { return v1.NewHash(digest.FromBytes(si.raw).String()) }
func (si *savedImage) Manifest() (*v1.Manifest, error)     { return si.m, nil }
func (si *savedImage) RawManifest() ([]byte, error)        { return si.raw, nil }
func (si *savedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	ls, _ := si.Layers()
	for _, l := range ls {
		if d, _ := l.Digest(); d == h {
			return l, nil
		}
	}
	if h == si.m.Config.Digest {
		return &configLayer{raw: si.img.Config, h: h}, nil
	}
	return nil, fmt.Errorf("image %s has no blob %s", store.ShortID(si.img.ID), h)
}
func (si *savedImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) { return si.LayerByDigest(h) }

type savedLayer struct {
	st   storage.Store
	l    *storage.Layer
	desc v1.Descriptor
}

func (l *savedLayer) Digest() (v1.Hash, error)             { return l.desc.Digest, nil }
func (l *savedLayer) DiffID() (v1.Hash, error)             { return l.desc.Digest, nil }
func (l *savedLayer) Size() (int64, error)                 { return l.desc.Size, nil }
func (l *savedLayer) MediaType() (types.MediaType, error)  { return l.desc.MediaType, nil }
func (l *savedLayer) Compressed() (io.ReadCloser, error)   { return uncompressedDiff(l.st, l.l.ID) }
func (l *savedLayer) Uncompressed() (io.ReadCloser, error) { return uncompressedDiff(l.st, l.l.ID) }

type configLayer struct {
	raw []byte
	h   v1.Hash
}

func (l *configLayer) Digest() (v1.Hash, error)            { return l.h, nil }
func (l *configLayer) DiffID() (v1.Hash, error)            { return l.h, nil }
func (l *configLayer) Size() (int64, error)                { return int64(len(l.raw)), nil }
func (l *configLayer) MediaType() (types.MediaType, error) { return types.OCIConfigJSON, nil }
func (l *configLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.raw)), nil
}
func (l *configLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }

// writeOCIArchive streams an OCI layout as a tar: blobs as they are read
// from the store, index.json last.
func writeOCIArchive(ctx context.Context, w io.Writer, imgs []*savedImage) error {
	if w == nil {
		return errors.New("no output for the archive")
	}
	tw := tar.NewWriter(w)
	now := time.Now()
	file := func(name string, size int64, r io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: now, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, r); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		return nil
	}
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir, Format: tar.FormatPAX})
	}
	layoutFile := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	if err := file("oci-layout", int64(len(layoutFile)), bytes.NewReader(layoutFile)); err != nil {
		return err
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	seen := map[string]bool{}
	blob := func(d v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
		if seen[d.Hex] {
			return nil
		}
		seen[d.Hex] = true
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		return file("blobs/sha256/"+d.Hex, size, r)
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, si := range imgs {
		ls, _ := si.Layers()
		for _, l := range ls {
			d, _ := l.Digest()
			size, _ := l.Size()
			if err := blob(d, size, l.Compressed); err != nil {
				return fmt.Errorf("writing layer %s: %w", d, err)
			}
		}
		if err := blob(si.m.Config.Digest, si.m.Config.Size, func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(si.img.Config)), nil
		}); err != nil {
			return err
		}
		md, _ := si.Digest()
		if err := blob(md, int64(len(si.raw)), func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(si.raw)), nil
		}); err != nil {
			return err
		}
		desc := v1.Descriptor{MediaType: si.m.MediaType, Digest: md, Size: int64(len(si.raw))}
		if si.name != "" {
			desc.Annotations = map[string]string{annotationRefName: si.name, annotationContainerdName: si.name}
		}
		idx.Manifests = append(idx.Manifests, desc)
	}
	ib, err := json.Marshal(&idx)
	if err != nil {
		return err
	}
	if err := file("index.json", int64(len(ib)), bytes.NewReader(ib)); err != nil {
		return err
	}
	return tw.Close()
}

// LoadedImage is one image Load stored.
type LoadedImage struct {
	ID    string
	Names []string
}

// Load stores the images of an archive: a docker-archive (docker save), an
// oci-archive, or an OCI layout directory; a tar may be gzip or zstd
// compressed. input is a path; with input "" the archive is read from r.
// Nothing outside the archive is read: paths that leave it, links that
// point out of it and missing files are errors, and layers are unpacked by
// the store, which keeps every entry inside the layer.
func Load(ctx context.Context, s *store.Store, input string, r io.Reader, o Options) ([]LoadedImage, error) {
	var afs archiveFS
	if input != "" {
		fi, err := os.Stat(input)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", input, err)
		}
		if fi.IsDir() {
			root, err := os.OpenRoot(input)
			if err != nil {
				return nil, fmt.Errorf("opening %s: %w", input, err)
			}
			defer root.Close()
			afs = &dirFS{root: root}
		} else {
			f, err := os.Open(input)
			if err != nil {
				return nil, fmt.Errorf("opening %s: %w", input, err)
			}
			defer f.Close()
			r = f
		}
	}
	if afs == nil {
		f, cleanup, err := seekableTar(s, r)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		tfs, err := indexTar(f)
		if err != nil {
			return nil, err
		}
		afs = tfs
	}
	prog := newProgress(o.Progress, o.Terminal, o.Quiet)
	defer prog.done()
	switch {
	case afs.exists("manifest.json"):
		return loadDocker(ctx, s, afs, o, prog)
	case afs.exists("oci-layout") || afs.exists("index.json"):
		return loadOCI(ctx, s, afs, o, prog)
	}
	return nil, errors.New("not an image archive: no manifest.json (docker-archive) or oci-layout and index.json (OCI layout)")
}

// seekableTar returns r as a plain tar file: as it is if it is one, else
// spooled (and decompressed) to a temporary file beside the store.
func seekableTar(s *store.Store, r io.Reader) (*os.File, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(4)
	compressed := bytes.HasPrefix(head, gzipMagic) || bytes.HasPrefix(head, zstdMagic)
	if f, ok := r.(*os.File); ok && !compressed {
		if _, err := f.Seek(0, io.SeekStart); err == nil {
			return f, func() {}, nil
		}
	}
	var src io.Reader = br
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the archive: %w", err)
		}
		defer zr.Close()
		src = zr
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the archive: %w", err)
		}
		defer zr.Close()
		src = zr
	}
	dir := tmpDir(s)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, fmt.Sprintf("load-%d-", os.Getpid()))
	if err != nil {
		return nil, nil, fmt.Errorf("creating a temporary file: %w", err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	if _, err := io.Copy(f, src); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("reading the archive: %w", err)
	}
	return f, cleanup, nil
}

// archiveFS is the files of an archive, addressed by clean relative paths.
type archiveFS interface {
	open(name string) (io.ReadCloser, int64, error)
	exists(name string) bool
}

// cleanArchivePath refuses a path that leaves the archive.
func cleanArchivePath(p string) (string, error) {
	c := path.Clean(strings.TrimPrefix(p, "./"))
	if p == "" || path.IsAbs(p) || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("the archive refers to %q, outside the archive", p)
	}
	return c, nil
}

type tarEntry struct {
	typ  byte
	off  int64
	size int64
	link string
}

type tarFS struct {
	f       *os.File
	entries map[string]tarEntry
}

// indexTar reads every header of a tar once, noting where each file's data
// is, so that files are then read in any order without scanning again.
func indexTar(f *os.File) (*tarFS, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	t := &tarFS{f: f, entries: map[string]tarEntry{}}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, errors.New("the archive is truncated")
			}
			return nil, fmt.Errorf("reading the archive: %w", err)
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg && off+hdr.Size > fi.Size() {
			return nil, fmt.Errorf("the archive is truncated: %s needs %d bytes, the file ends %d bytes early", hdr.Name, hdr.Size, off+hdr.Size-fi.Size())
		}
		name, err := cleanArchivePath(hdr.Name)
		if err != nil {
			continue // never looked up
		}
		t.entries[name] = tarEntry{typ: hdr.Typeflag, off: off, size: hdr.Size, link: hdr.Linkname}
	}
	return t, nil
}

func (t *tarFS) resolve(name string) (tarEntry, error) {
	p, err := cleanArchivePath(name)
	if err != nil {
		return tarEntry{}, err
	}
	for hops := 0; hops < 16; hops++ {
		e, ok := t.entries[p]
		if !ok {
			return tarEntry{}, fmt.Errorf("the archive refers to %s, which it does not contain", name)
		}
		switch e.typ {
		case tar.TypeReg:
			return e, nil
		case tar.TypeSymlink:
			target := e.link
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			if p, err = cleanArchivePath(strings.TrimPrefix(target, "/")); err != nil || path.IsAbs(e.link) {
				return tarEntry{}, fmt.Errorf("%s in the archive links to %q, outside the archive", name, e.link)
			}
		case tar.TypeLink:
			if p, err = cleanArchivePath(e.link); err != nil {
				return tarEntry{}, fmt.Errorf("%s in the archive links to %q, outside the archive", name, e.link)
			}
		default:
			return tarEntry{}, fmt.Errorf("%s in the archive is not a file", name)
		}
	}
	return tarEntry{}, fmt.Errorf("%s in the archive: too many links", name)
}

func (t *tarFS) open(name string) (io.ReadCloser, int64, error) {
	e, err := t.resolve(name)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(io.NewSectionReader(t.f, e.off, e.size)), e.size, nil
}

func (t *tarFS) exists(name string) bool {
	_, err := t.resolve(name)
	return err == nil
}

// dirFS is an OCI layout directory; os.Root keeps every open inside it,
// symbolic links included.
type dirFS struct{ root *os.Root }

func (d *dirFS) open(name string) (io.ReadCloser, int64, error) {
	p, err := cleanArchivePath(name)
	if err != nil {
		return nil, 0, err
	}
	f, err := d.root.Open(p)
	if err != nil {
		return nil, 0, fmt.Errorf("the layout refers to %s: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s in the layout is not a file", name)
	}
	return f, fi.Size(), nil
}

func (d *dirFS) exists(name string) bool {
	rc, _, err := d.open(name)
	if err != nil {
		return false
	}
	rc.Close()
	return true
}

func readSmall(afs archiveFS, name string) ([]byte, error) {
	rc, size, err := afs.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxArchiveJSON {
		return nil, fmt.Errorf("%s in the archive is %d bytes, more than the %d-byte limit", name, size, maxArchiveJSON)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxArchiveJSON+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s from the archive: %w", name, err)
	}
	return b, nil
}

// readBlob reads a blob of an OCI layout and checks it against its
// descriptor.
func readBlob(afs archiveFS, d v1.Descriptor) ([]byte, error) {
	p := "blobs/" + d.Digest.Algorithm + "/" + d.Digest.Hex
	b, err := readSmall(afs, p)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("blob %s in the archive is %d bytes, its descriptor says %d", d.Digest, len(b), d.Size)
	}
	if got := digest.FromBytes(b); got.String() != d.Digest.String() {
		return nil, &DigestMismatchError{What: "blob in the archive", Want: d.Digest.String(), Got: got.String()}
	}
	return b, nil
}

func archiveLayerSource(afs archiveFS, p string, blob digest.Digest, size int64, diff digest.Digest) layerSource {
	return layerSource{
		blob:     blob,
		blobSize: size,
		diffID:   diff,
		open: func(context.Context) (io.ReadCloser, error) {
			rc, _, err := afs.open(p)
			return rc, err
		},
	}
}

func loadDocker(ctx context.Context, s *store.Store, afs archiveFS, o Options, prog *progress) ([]LoadedImage, error) {
	mb, err := readSmall(afs, "manifest.json")
	if err != nil {
		return nil, err
	}
	var m tarball.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("decoding manifest.json: %w", err)
	}
	if len(m) == 0 {
		return nil, errors.New("manifest.json lists no image")
	}
	var out []LoadedImage
	for _, d := range m {
		cfgPath, err := cleanArchivePath(d.Config)
		if err != nil {
			return nil, fmt.Errorf("manifest.json: %w", err)
		}
		cfgBytes, err := readSmall(afs, cfgPath)
		if err != nil {
			return nil, fmt.Errorf("manifest.json: %w", err)
		}
		var cfg v1.ConfigFile
		if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
			return nil, fmt.Errorf("decoding the configuration %s: %w", d.Config, err)
		}
		if len(cfg.RootFS.DiffIDs) != len(d.Layers) {
			return nil, fmt.Errorf("manifest.json lists %d layers for %s, its configuration %d", len(d.Layers), d.Config, len(cfg.RootFS.DiffIDs))
		}
		srcs := make([]layerSource, len(d.Layers))
		for i, lp := range d.Layers {
			p, err := cleanArchivePath(lp)
			if err != nil {
				return nil, fmt.Errorf("manifest.json: %w", err)
			}
			rc, size, err := afs.open(p)
			if err != nil {
				return nil, fmt.Errorf("manifest.json: %w", err)
			}
			rc.Close()
			diff, err := digest.Parse(cfg.RootFS.DiffIDs[i].String())
			if err != nil {
				return nil, fmt.Errorf("configuration %s: diff ID %d: %w", d.Config, i, err)
			}
			// Newer docker names blobs by their digest: check it too.
			var blob digest.Digest
			if hex, ok := strings.CutPrefix(p, "blobs/sha256/"); ok {
				if bd, err := digest.Parse("sha256:" + hex); err == nil {
					blob = bd
				}
			}
			srcs[i] = archiveLayerSource(afs, p, blob, size, diff)
		}
		var names []string
		for _, t := range d.RepoTags {
			n, err := store.NormalizeName(t)
			if err != nil {
				return nil, fmt.Errorf("manifest.json: %w", err)
			}
			names = append(names, n.String())
		}
		img, err := storeArchiveImage(ctx, s, srcs, cfgBytes, nil, names, cfg.Created.Time, o, prog)
		if err != nil {
			return nil, err
		}
		out = append(out, LoadedImage{ID: img.ID, Names: names})
	}
	return out, nil
}

// storeArchiveImage stores layers and records the image; a nil manifest
// gets an OCI manifest with uncompressed layers, as for a local image.
func storeArchiveImage(ctx context.Context, s *store.Store, srcs []layerSource, cfgBytes, manifest []byte, names []string, created time.Time, o Options, prog *progress) (*store.Image, error) {
	top, err := storeLayers(ctx, s, srcs, o.jobs(), prog)
	if err != nil {
		return nil, err
	}
	if manifest == nil {
		chain, err := s.LayerChain(top)
		if err != nil {
			return nil, err
		}
		cd, _ := v1.NewHash(digest.FromBytes(cfgBytes).String())
		m := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cd, Size: int64(len(cfgBytes))},
			Layers:        []v1.Descriptor{},
		}
		for _, l := range chain {
			h, _ := v1.NewHash(l.UncompressedDigest.String())
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Digest: h, Size: l.UncompressedSize})
		}
		if manifest, err = json.Marshal(&m); err != nil {
			return nil, err
		}
	}
	return s.CreateImage(store.NewImage{TopLayer: top, Names: names, Manifest: manifest, Config: cfgBytes, Created: created})
}

func loadOCI(ctx context.Context, s *store.Store, afs archiveFS, o Options, prog *progress) ([]LoadedImage, error) {
	ib, err := readSmall(afs, "index.json")
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(ib))
	if err != nil {
		return nil, fmt.Errorf("decoding index.json: %w", err)
	}
	if len(idx.Manifests) == 0 {
		return nil, errors.New("index.json lists no image")
	}
	want, err := ParsePlatform(o.Platform)
	if err != nil {
		return nil, err
	}
	var out []LoadedImage
	for _, d := range idx.Manifests {
		nameAnn := ociName(d.Annotations)
		if d.MediaType.IsIndex() {
			// A multi-platform image: take the wanted platform's entry.
			nb, err := readBlob(afs, d)
			if err != nil {
				return nil, err
			}
			sub, err := v1.ParseIndexManifest(bytes.NewReader(nb))
			if err != nil {
				return nil, fmt.Errorf("decoding index %s: %w", d.Digest, err)
			}
			found := false
			for _, sd := range sub.Manifests {
				if sd.Platform != nil && platformMatches(want, *sd.Platform) && sd.MediaType.IsImage() {
					d, found = sd, true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("the archive has no image for %s", want.String())
			}
		}
		if !d.MediaType.IsImage() {
			continue
		}
		mb, err := readBlob(afs, d)
		if err != nil {
			return nil, err
		}
		m, err := v1.ParseManifest(bytes.NewReader(mb))
		if err != nil {
			return nil, fmt.Errorf("decoding manifest %s: %w", d.Digest, err)
		}
		cfgBytes, err := readBlob(afs, m.Config)
		if err != nil {
			return nil, err
		}
		var cfg v1.ConfigFile
		if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
			return nil, fmt.Errorf("decoding configuration %s: %w", m.Config.Digest, err)
		}
		if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
			return nil, fmt.Errorf("manifest %s has %d layers, its configuration %d diff IDs", d.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
		}
		srcs := make([]layerSource, len(m.Layers))
		for i, l := range m.Layers {
			blob, err := digest.Parse(l.Digest.String())
			if err != nil {
				return nil, fmt.Errorf("manifest %s: layer %d: %w", d.Digest, i, err)
			}
			diff, err := digest.Parse(cfg.RootFS.DiffIDs[i].String())
			if err != nil {
				return nil, fmt.Errorf("configuration %s: diff ID %d: %w", m.Config.Digest, i, err)
			}
			srcs[i] = archiveLayerSource(afs, "blobs/"+l.Digest.Algorithm+"/"+l.Digest.Hex, blob, l.Size, diff)
		}
		var names []string
		if nameAnn != "" {
			names = []string{nameAnn}
		}
		img, err := storeArchiveImage(ctx, s, srcs, cfgBytes, mb, names, cfg.Created.Time, o, prog)
		if err != nil {
			return nil, err
		}
		out = append(out, LoadedImage{ID: img.ID, Names: names})
	}
	if len(out) == 0 {
		return nil, errors.New("index.json lists no image manifest")
	}
	return out, nil
}

// ociName is the fully qualified name an OCI index entry carries, if any.
func ociName(ann map[string]string) string {
	for _, k := range []string{annotationContainerdName, annotationRefName} {
		v := ann[k]
		if v == "" || !(strings.Contains(v, "/") || strings.Contains(v, ":") && !strings.HasPrefix(v, ":")) {
			continue
		}
		if strings.Count(v, ":") == 0 && !strings.Contains(v, "/") {
			continue
		}
		n, err := store.NormalizeName(v)
		if err != nil {
			continue
		}
		if _, dig := n.(reference.Digested); dig {
			continue
		}
		return n.String()
	}
	return ""
}
