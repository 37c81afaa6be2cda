package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A container's init is nook itself until it execs the command, and with
// --init it stays pid 1. If that process's /proc/PID/exe led to nook's
// binary on the host, a process in the container could open it and
// overwrite nook (CVE-2019-5736). So the init is executed from a handle
// that cannot be written: a private, detached, lower-only overlayfs mount
// of nook's directory (runc's approach since 1.2; it costs no copy), or,
// where overlayfs refuses, a sealed memfd copy of the binary.

var (
	sealOnce sync.Once
	sealFD   int
	sealErr  error
)

// sealedExe returns "/proc/self/fd/N" for a read-only handle on nook's
// binary. The descriptor stays open (close-on-exec) for the life of the
// process and is numbered high, clear of the descriptors a child gets.
func sealedExe(scratch string) (string, error) {
	sealOnce.Do(func() {
		var fd int
		fd, sealErr = sealedOverlay(scratch)
		if sealErr != nil {
			var err2 error
			fd, err2 = sealedMemfd()
			if err2 != nil {
				sealErr = fmt.Errorf("sealing nook's binary: overlay: %v; memfd: %w", sealErr, err2)
				return
			}
			sealErr = nil
		}
		sealFD, sealErr = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 200)
		unix.Close(fd)
	})
	if sealErr != nil {
		return "", sealErr
	}
	return fmt.Sprintf("/proc/self/fd/%d", sealFD), nil
}

func selfPath() (string, error) {
	p, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(p, " (deleted)"), nil
}

func escapeLowerDir(p string) string {
	return strings.ReplaceAll(strings.ReplaceAll(p, `\`, `\\`), `:`, `\:`)
}

// sealedOverlay opens nook through an overlayfs that has two lower layers
// and no upper one: writes through it fail with EROFS, and the mount is
// never attached anywhere, so it cannot be remounted writable.
func sealedOverlay(scratch string) (int, error) {
	self, err := selfPath()
	if err != nil {
		return -1, err
	}
	empty := filepath.Join(scratch, "empty")
	if err := os.MkdirAll(empty, 0o700); err != nil {
		return -1, err
	}
	ctx, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(ctx)
	lower := escapeLowerDir(filepath.Dir(self)) + ":" + escapeLowerDir(empty)
	if err := unix.FsconfigSetString(ctx, "lowerdir", lower); err != nil {
		return -1, fmt.Errorf("overlay lowerdir=%s: %w", lower, err)
	}
	_ = unix.FsconfigSetString(ctx, "xino", "off")
	if err := unix.FsconfigCreate(ctx); err != nil {
		return -1, fmt.Errorf("creating the overlay: %w", err)
	}
	mnt, err := unix.Fsmount(ctx, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return -1, fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mnt)
	fd, err := unix.Openat(mnt, filepath.Base(self), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening %s through the overlay: %w", filepath.Base(self), err)
	}
	return fd, nil
}

// sealedMemfd copies nook into a memfd and seals it against any change.
func sealedMemfd() (int, error) {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return -1, err
	}
	defer self.Close()
	fd, err := unix.MemfdCreate("nook", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:nook")
	if _, err := io.Copy(f, self); err != nil {
		f.Close()
		return -1, fmt.Errorf("copying nook into a memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return -1, fmt.Errorf("sealing the memfd: %w", err)
	}
	nfd, err := unix.Dup(fd)
	f.Close()
	if err != nil {
		return -1, errors.New("dup of the memfd failed")
	}
	return nfd, nil
}
