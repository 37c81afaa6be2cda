// Command nook builds, runs, composes, pushes and pulls containers as an
// ordinary user, with no daemon.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/nook-containers/nook/commands"
	"github.com/nook-containers/nook/userns"
	_ "github.com/nook-containers/nook/userns/join" // enters the user's namespace before the Go runtime starts
	"go.podman.io/storage/pkg/reexec"
)

func main() {
	if reexec.Init() {
		return
	}
	if userns.HolderMain() {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := commands.Main(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
