//go:build linux && cgo

package monitor

import "testing"

// The C side (monitor.h) and the Go side must agree on the protocol.
func TestConstantsMatchHeader(t *testing.T) {
	arg0, fds, initArg0, initFDs := cConstants()
	if arg0 != Arg0 {
		t.Errorf("MONITOR_ARG0 %q, Arg0 %q", arg0, Arg0)
	}
	if want := [5]int{FDConfig, FDReport, FDNetNS, FDHolder, FDExe}; fds != want {
		t.Errorf("monitor descriptors: C %v, Go %v", fds, want)
	}
	// runner/init_linux.go: initArg0 and fdConfig..fdNetNS.
	if initArg0 != "nook-container-init" || initFDs != [4]int{3, 4, 5, 6} {
		t.Errorf("init protocol: %q %v", initArg0, initFDs)
	}
}
