package builder

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/nook-containers/nook/store"
)

// Output is one --output: where to export the result besides the store.
type Output struct {
	Type string // local, tar, oci, docker
	Dest string // a directory (local) or a file; "-" is standard output
	Name string // image name written into docker and oci archives
}

// ParseOutputs reads --output values: "type=local,dest=DIR", or a bare
// path (a local directory, as docker takes it), or "-" (a tar on stdout).
func ParseOutputs(values []string) ([]Output, error) {
	var outs []Output
	for _, v := range values {
		o := Output{}
		if !strings.Contains(v, "=") {
			if v == "-" {
				o = Output{Type: "tar", Dest: "-"}
			} else {
				o = Output{Type: "local", Dest: v}
			}
			outs = append(outs, o)
			continue
		}
		for _, f := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("invalid --output %q: use type=TYPE,dest=PATH", v)
			}
			switch k {
			case "type":
				o.Type = val
			case "dest":
				o.Dest = val
			case "name":
				o.Name = val
			default:
				return nil, fmt.Errorf("invalid --output %q: unknown key %q", v, k)
			}
		}
		switch o.Type {
		case "local", "tar", "oci", "docker":
		case "image", "registry":
			return nil, fmt.Errorf("--output type=%s: the image is always stored; use nook push to send it to a registry", o.Type)
		default:
			return nil, fmt.Errorf("invalid --output type %q: use local, tar, oci or docker", o.Type)
		}
		if o.Dest == "" {
			return nil, fmt.Errorf("--output type=%s needs dest=PATH", o.Type)
		}
		if o.Type == "local" && o.Dest == "-" {
			return nil, fmt.Errorf("--output type=local needs a directory, not -")
		}
		outs = append(outs, o)
	}
	return outs, nil
}

// Export writes a build's result as out says.
func Export(ctx context.Context, s *store.Store, res *Result, out Output, stdout io.Writer) error {
	switch out.Type {
	case "local", "tar":
		root := ""
		if res.TargetTop != "" {
			p, err := s.Storage().Mount(res.TargetTop, "")
			if err != nil {
				return fmt.Errorf("mounting the result: %w", err)
			}
			defer func() { _, _ = s.Storage().Unmount(res.TargetTop, false) }()
			root = p
		}
		if out.Type == "local" {
			if err := os.MkdirAll(out.Dest, 0o755); err != nil {
				return err
			}
			if root == "" {
				return nil
			}
			return copyOut(root, out.Dest)
		}
		w, closeFn, err := openDest(out.Dest, stdout)
		if err != nil {
			return err
		}
		err = tarTree(root, w)
		if cerr := closeFn(); err == nil {
			err = cerr
		}
		return err
	case "docker", "oci":
		img, err := v1Image(s, res)
		if err != nil {
			return err
		}
		tag := out.Name
		if tag == "" && len(res.Image.Names) > 0 {
			tag = res.Image.Names[0]
		}
		w, closeFn, err := openDest(out.Dest, stdout)
		if err != nil {
			return err
		}
		if out.Type == "docker" {
			var ref name.Reference
			if tag != "" {
				ref, err = name.ParseReference(tag)
			}
			if err == nil {
				if ref == nil {
					err = tarball.Write(nil, img, w)
				} else {
					err = tarball.MultiRefWrite(map[name.Reference]v1.Image{ref: img}, w)
				}
			}
		} else {
			err = writeOCIArchive(img, tag, w)
		}
		if cerr := closeFn(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing the %s archive: %w", out.Type, err)
		}
		return nil
	}
	return fmt.Errorf("unknown output type %q", out.Type)
}

func openDest(dest string, stdout io.Writer) (io.Writer, func() error, error) {
	if dest == "-" {
		return stdout, func() error { return nil }, nil
	}
	f, err := os.Create(dest)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

// v1Image is the built image as go-containerregistry sees it.
func v1Image(s *store.Store, res *Result) (v1.Image, error) {
	img := empty.Image
	for _, l := range res.TargetLayers {
		id := l.ID
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return s.LayerDiff(id) })
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return nil, err
		}
	}
	return mutate.ConfigFile(img, res.TargetConfig)
}

func writeOCIArchive(img v1.Image, tag string, w io.Writer) error {
	dir, err := os.MkdirTemp("", "nook-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
	}
	if err := p.AppendImage(img, opts...); err != nil {
		return err
	}
	return tarTree(dir, w)
}

// tarTree writes a directory tree as a tar archive (links kept as links).
func tarTree(root string, w io.Writer) error {
	tw := tar.NewWriter(w)
	if root != "" {
		err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if rel == "." {
				return nil
			}
			link := ""
			if fi.Mode()&os.ModeSymlink != 0 {
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			}
			if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&os.ModeSymlink == 0 {
				return nil
			}
			h, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			h.Name = filepath.ToSlash(rel)
			if fi.IsDir() {
				h.Name += "/"
			}
			h.Uname, h.Gname = "", ""
			h.Uid, h.Gid = ownerOf(fi)
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				_, err = io.Copy(tw, f)
				f.Close()
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// copyOut copies the result's tree to a directory owned by the user
// (owners are not kept, as docker's local exporter).
func copyOut(root, dest string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		t := filepath.Join(dest, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if rel == "." {
				return nil
			}
			return os.MkdirAll(t, info.Mode().Perm()|0o700)
		case info.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			os.Remove(t)
			return os.Symlink(l, t)
		case info.Mode().IsRegular():
			return copyFile(p, t, info.Mode())
		}
		return nil
	})
}
