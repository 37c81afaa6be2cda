//go:build !linux || !cgo

// Package join enters the per-user holder's namespaces before the Go runtime
// starts. Without cgo (or off Linux) it does nothing and nook reports that
// rootless operation needs a cgo build.
package join
