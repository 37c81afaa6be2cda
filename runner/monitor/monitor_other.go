//go:build !linux || !cgo

package monitor

// Arg0 is the monitor's argv[0].
const Arg0 = "nook-container-monitor"

// The monitor's descriptors.
const (
	FDConfig = 3
	FDReport = 4
	FDNetNS  = 5
	FDHolder = 6
	FDExe    = 7
)

// Available reports whether this build has the monitor: it needs cgo.
const Available = false
