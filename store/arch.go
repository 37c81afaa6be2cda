package store

import "runtime"

func goarch() string { return runtime.GOARCH }
