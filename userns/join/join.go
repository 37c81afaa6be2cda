//go:build linux && cgo

// Package join enters the per-user holder's namespaces before the Go runtime
// starts. Importing it for its side effect is all a binary needs to do; the
// rest of nook reads the outcome from the environment, which init sets.
package join

// #cgo CFLAGS: -Wall
// long nook_joined_pid(void);
// const char *nook_join_failure(void);
// unsigned nook_host_uid(void);
// unsigned nook_host_gid(void);
import "C"

import (
	"os"
	"strconv"
)

func init() {
	if f := C.nook_join_failure(); f != nil {
		os.Setenv("_NOOK_NOJOIN", "failed")
		return
	}
	pid := int64(C.nook_joined_pid())
	if pid == 0 {
		return
	}
	// Children (storage's re-exec helpers, containers) inherit these: they
	// are already inside, and containers/storage reads the host ids here.
	os.Setenv("_NOOK_JOINED", strconv.FormatInt(pid, 10))
	os.Setenv("_CONTAINERS_ROOTLESS_UID", strconv.FormatUint(uint64(C.nook_host_uid()), 10))
	os.Setenv("_CONTAINERS_ROOTLESS_GID", strconv.FormatUint(uint64(C.nook_host_gid()), 10))
	os.Setenv("_CONTAINERS_USERNS_CONFIGURED", "done")
}
