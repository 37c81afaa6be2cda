// Package runner turns images into running containers.
//
// The work is split in three steps, each testable on its own:
//
//   - Spec (spec.go) is pure: an image configuration plus run Options become
//     an OCI runtime-spec document, with docker's rules for the command,
//     environment, user, mounts, capabilities, masked paths and seccomp.
//   - The built-in executor (init_linux.go, exec_linux.go) runs that
//     document: nook re-executes itself (from a sealed, read-only copy of its
//     binary) in new mount, pid, uts, ipc and network namespaces inside the
//     per-user holder's user namespace, builds the root filesystem, pivots
//     into it, drops privileges and execs the container's command.
//   - Containers (container.go) are records in the store with a state file
//     written atomically under a lock, so that any later invocation can list,
//     inspect and remove them.
//
// Networking beyond "none" and "host" is delegated to a NetworkAttacher so
// that the network library plugs in without changes here.
//
// Non-goals: no daemon, no API server; a foreground run is supervised by the
// invoking process itself.
package runner
