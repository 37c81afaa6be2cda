package userns

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Environment keys shared with the join constructor (join/join.c).
const (
	envJoined = "_NOOK_JOINED" // set by the constructor: the pid whose namespaces were joined
	envHolder = "_NOOK_HOLDER" // set in every holder process: never join
	envNoJoin = "_NOOK_NOJOIN" // "failed" when the constructor could not join
)

// HostUID is the user's uid on the host, also after joining (where
// os.Getuid reports 0).
func HostUID() int {
	if v, err := strconv.Atoi(os.Getenv("_CONTAINERS_ROOTLESS_UID")); err == nil && (Joined() || inHolder()) {
		return v
	}
	return os.Getuid()
}

// HostGID is the user's gid on the host.
func HostGID() int {
	if v, err := strconv.Atoi(os.Getenv("_CONTAINERS_ROOTLESS_GID")); err == nil && (Joined() || inHolder()) {
		return v
	}
	return os.Getgid()
}

func inHolder() bool { return os.Getenv(envHolder) != "" }

// Rootless reports whether nook runs for an unprivileged user.
func Rootless() bool { return HostUID() != 0 }

// Joined reports whether this process entered the holder's namespaces.
func Joined() bool { return os.Getenv(envJoined) != "" }

// RuntimeDir is the per-user directory for volatile state: holder, storage
// run root, locks. $XDG_RUNTIME_DIR/nook, else /tmp/nook-run-UID (the same
// rule as the join constructor).
func RuntimeDir() string {
	if HostUID() == 0 {
		return "/run/nook"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "nook")
	}
	return fmt.Sprintf("/tmp/nook-run-%d", HostUID())
}

// HolderDir is the holder's state directory (rootlesskit's StateDir).
func HolderDir() string { return filepath.Join(RuntimeDir(), "holder") }

// DataDir is the default per-user store directory.
func DataDir() string {
	if HostUID() == 0 {
		return "/var/lib/nook"
	}
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "nook")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" || home == "/" {
		return filepath.Join(RuntimeDir(), "data")
	}
	return filepath.Join(home, ".local", "share", "nook")
}

// ConfigDir is the per-user configuration directory.
func ConfigDir() string {
	if HostUID() == 0 {
		return "/etc/nook"
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "nook")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config", "nook")
}

// ensurePrivateDir creates dir with mode 0700 and checks that it belongs to
// the user, so that a directory planted in /tmp by somebody else is refused.
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || (ok && int(st.Uid) != os.Getuid()) {
		return fmt.Errorf("%s is not a directory owned by uid %d: remove it or set XDG_RUNTIME_DIR", dir, os.Getuid())
	}
	return nil
}
