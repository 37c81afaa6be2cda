package runner

import (
	"fmt"
	"io"

	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/chrootarchive"
)

// Export streams the container's whole file system (its layer over the
// image's, without volumes and bind mounts) as a tar, as docker export.
func (r *Runtime) Export(c *Container, w io.Writer) error {
	f, err := r.mountFiles(c)
	if err != nil {
		return err
	}
	defer f.release()
	rc, err := chrootarchive.Tar(f.rootfs, &archive.TarOptions{Compression: archive.Uncompressed}, f.rootfs)
	if err != nil {
		return fmt.Errorf("exporting container %s: %w", c.Name, err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("exporting container %s: %w", c.Name, err)
	}
	return rc.Close()
}
