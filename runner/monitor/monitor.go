//go:build linux && cgo

// Package monitor is the per-container monitor of detached containers,
// written in C (monitor.c) so that it runs before the Go runtime starts
// and stays small for the life of the container. Importing the package
// links it in; runner starts it by executing nook with argv[0] Arg0.
package monitor

// #cgo CFLAGS: -Wall -Wno-unused-result
// #include "monitor.h"
import "C"

// Arg0 is the monitor's argv[0].
const Arg0 = "nook-container-monitor"

// The monitor's descriptors (see monitor.h).
const (
	FDConfig = 3
	FDReport = 4
	FDNetNS  = 5
	FDHolder = 6
	FDExe    = 7
)

// Available reports whether this build has the monitor.
const Available = true

// cConstants are the header's values, for the test that keeps them in step.
func cConstants() (arg0 string, fds [5]int, initArg0 string, initFDs [4]int) {
	return C.MONITOR_ARG0, [5]int{C.FD_CONFIG, C.FD_REPORT, C.FD_NETNS, C.FD_HOLDER, C.FD_EXE},
		C.INIT_ARG0, [4]int{C.INIT_FD_CONFIG, C.INIT_FD_STATUS, C.INIT_FD_CONSOLE, C.INIT_FD_NETNS}
}
