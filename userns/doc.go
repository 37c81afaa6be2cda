// Package userns owns the per-user rootless namespace.
//
// A rootless user gets one long-lived holder: a user namespace (uid 0 inside
// is the user; 1..N are the user's /etc/subuid range), a mount namespace in
// which overlay layers stay mounted between invocations, and a detached
// network namespace whose outbound traffic goes through slirp4netns. The
// holder is rootlesskit's parent/child pair plus a pause process; it serves
// no requests. Every later nook invocation enters the user and mount
// namespaces before the Go runtime starts (package userns/join) and keeps
// the user's own network.
//
// Real root needs no holder: nook runs in the host's namespaces.
//
// Holder lifetime: the pause process exits once nothing but the holder has
// run in the namespace for the idle timeout (NOOK_HOLDER_IDLE, default 10m,
// "0" = never), taking the namespaces and their mounts with it; the next
// invocation starts a fresh holder in about a tenth of a second.
package userns
