package builder

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"go.podman.io/storage/pkg/archive"
)

// untarContext unpacks a build context tarball into dir. Every entry is
// placed with its parents resolved inside dir (a symlink in the tarball
// cannot redirect a later entry outside); "../" entries are refused.
func untarContext(r io.Reader, dir string) error {
	br := bufio.NewReader(r)
	head, _ := br.Peek(10)
	var in io.Reader = br
	if archive.DetectCompression(head) != archive.Uncompressed {
		dr, err := archive.DecompressStream(br)
		if err != nil {
			return fmt.Errorf("decompressing the context: %w", err)
		}
		defer dr.Close()
		in = dr
	}
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the context tarball: %w", err)
		}
		name := path.Clean("/" + h.Name)
		if strings.Contains(h.Name, "..") {
			for _, part := range strings.Split(h.Name, "/") {
				if part == ".." {
					return fmt.Errorf("the context tarball has an entry outside it: %q", h.Name)
				}
			}
		}
		if name == "/" {
			continue
		}
		parent, err := securejoin.SecureJoin(dir, path.Dir(name))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		target := filepath.Join(parent, path.Base(name))
		mode := os.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			_ = os.Chmod(target, mode|0o700)
		case tar.TypeReg:
			os.Remove(target)
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("unpacking %s: %w", h.Name, err)
			}
			_ = os.Chmod(target, mode)
		case tar.TypeSymlink:
			os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src, err := securejoin.SecureJoin(dir, path.Clean("/"+h.Linkname))
			if err != nil {
				return err
			}
			os.Remove(target)
			if err := os.Link(src, target); err != nil {
				return fmt.Errorf("unpacking hard link %s: %w", h.Name, err)
			}
		default:
			continue // devices, fifos: not part of a build context
		}
		if h.Typeflag != tar.TypeSymlink {
			_ = os.Chtimes(target, h.ModTime, h.ModTime)
		}
	}
}
