// Package runner turns images into running containers.
//
// The work is split in four parts, each testable on its own:
//
//   - Spec (spec.go) is pure: an image configuration plus run Options become
//     an OCI runtime-spec document, with docker's rules for the command,
//     environment, user, mounts, capabilities, masked paths and seccomp.
//
//   - The built-in executor (init_linux.go, exec_linux.go) runs that
//     document: nook re-executes itself (from a sealed, read-only copy of its
//     binary) in new mount, pid, uts, ipc and network namespaces inside the
//     per-user holder's user namespace, builds the root filesystem, pivots
//     into it, drops privileges and execs the container's command.
//
//   - Containers (container.go) are records in the store with a state file
//     written atomically under a lock, so that any later invocation can list,
//     inspect and remove them.
//
//   - Detached containers (detach_linux.go, lifecycle.go) are supervised
//     by a per-container monitor, package monitor: a small C program in
//     nook's binary that runs before the Go runtime starts. It owns the
//     container's output (docker json-file logs, logs.go reads them),
//     records the state in monitor.json, applies the restart policy and
//     schedules health checks (health.go); Stop, Kill, Wait and Remove act
//     on the container's processes from any later invocation and leave
//     flag files for the monitor.
//
// Networking beyond "none" and "host" is delegated to a NetworkAttacher so
// that the network library plugs in without changes here.
//
// Non-goals: no daemon, no API server; a foreground run is supervised by the
// invoking process itself, a detached one by its monitor, which exits with
// the container.
package runner
