//go:build !linux || !cgo

// Package nsenter enters a running container's namespaces before the Go
// runtime starts. Without cgo (or off Linux) it does nothing, and `nook
// exec` reports that it needs a cgo build.
package nsenter

// EnvKey is the environment variable that triggers the constructor.
const EnvKey = "_NOOK_NSENTER"
