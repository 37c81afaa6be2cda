//go:build linux && cgo

// Package nsenter enters a running container's namespaces before the Go
// runtime starts (see nsenter.c). Importing it for its side effect is all
// a binary needs; it does nothing unless the process was started by
// `nook exec` with _NOOK_NSENTER set.
package nsenter

// #cgo CFLAGS: -Wall
import "C"

// EnvKey is the environment variable that triggers the constructor.
const EnvKey = "_NOOK_NSENTER"
