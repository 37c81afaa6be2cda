package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// defaultStopTimeout is docker's grace period before SIGKILL.
const defaultStopTimeout = 10

// StopOptions are docker stop's flags.
type StopOptions struct {
	// Timeout is -t, seconds to wait after the stop signal before SIGKILL
	// (negative: wait for ever); nil: the container's --stop-timeout, else 10.
	Timeout *int
	// Signal is -s; empty: the container's stop signal.
	Signal string
}

// ParseSignal accepts "TERM", "SIGTERM", "term" or "15".
func ParseSignal(s string) (unix.Signal, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(u); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	if !strings.HasPrefix(u, "SIG") {
		u = "SIG" + u
	}
	if sig := unix.SignalNum(u); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}

// flag creates a flag file for the monitor and tells it to look.
func (r *Runtime) flag(c *Container, name string) {
	if f, err := os.OpenFile(filepath.Join(c.Dir, name), os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.Close()
	}
	if c.State.Detached && alive(c.State.Owner, c.State.OwnerStart) {
		_ = unix.Kill(c.State.Owner, unix.SIGUSR1)
	}
}

// Stop stops a container as docker does: its stop signal, then SIGKILL
// after the timeout. A restart policy does not restart it (until the
// next start). It returns once the container's monitor has recorded the
// end and released the container's network and mounts.
func (r *Runtime) Stop(ctx context.Context, c *Container, o StopOptions) error {
	if !c.State.Active() {
		r.waitSupervisor(c, 30*time.Second)
		return nil
	}
	r.flag(c, flagStopped)
	if c.State.Status == StatusRunning {
		name := o.Signal
		if name == "" {
			name = c.StopSignal
		}
		if name == "" {
			name = "SIGTERM"
		}
		sig, err := ParseSignal(name)
		if err != nil {
			return &UserError{Err: err}
		}
		timeout := defaultStopTimeout
		if o.Timeout != nil {
			timeout = *o.Timeout
		} else if c.Options.StopTimeout != nil {
			timeout = *c.Options.StopTimeout
		}
		pid, start := c.State.Pid, c.State.PidStart
		if err := signalPid(pid, start, sig); err != nil {
			return fmt.Errorf("stopping container %s: %w", c.Name, err)
		}
		grace := time.Duration(timeout) * time.Second
		if timeout < 0 {
			grace = time.Duration(1<<63 - 1)
		}
		if !waitGoneCtx(ctx, pid, start, grace) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := signalPid(pid, start, unix.SIGKILL); err != nil {
				return fmt.Errorf("killing container %s: %w", c.Name, err)
			}
			if !waitGone(pid, start, 10*time.Second) {
				return fmt.Errorf("container %s did not stop after SIGKILL", c.Name)
			}
		}
	}
	r.waitSupervisor(c, 30*time.Second)
	return nil
}

func signalPid(pid int, start uint64, sig unix.Signal) error {
	if !alive(pid, start) {
		return nil
	}
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

// fatalSignal reports whether sig ends a container, so that kill counts as
// a manual stop (docker: SIGKILL and the stop signal, and the terminating
// signals; SIGUSR1 and the like leave the restart policy in place).
func fatalSignal(c *Container, sig unix.Signal) bool {
	if stop, err := ParseSignal(c.StopSignal); err == nil && stop == sig {
		return true
	}
	switch sig {
	case unix.SIGKILL, unix.SIGTERM, unix.SIGINT, unix.SIGQUIT:
		return true
	}
	return false
}

// NotRunningError says a container does not run.
type NotRunningError struct{ Name string }

func (e *NotRunningError) Error() string { return fmt.Sprintf("container %s is not running", e.Name) }

// Kill sends sig to the container's main process and returns at once.
func (r *Runtime) Kill(ctx context.Context, c *Container, sig unix.Signal) error {
	if c.State.Status != StatusRunning || !alive(c.State.Pid, c.State.PidStart) {
		return &UserError{Err: &NotRunningError{Name: c.Name}}
	}
	if fatalSignal(c, sig) {
		r.flag(c, flagStopped)
	}
	if err := unix.Kill(c.State.Pid, sig); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return &UserError{Err: &NotRunningError{Name: c.Name}}
		}
		return fmt.Errorf("signalling container %s: %w", c.Name, err)
	}
	return nil
}

// Wait waits until the container is not running (its current run ends,
// even when a restart policy starts it again) and returns its exit code.
func (r *Runtime) Wait(ctx context.Context, c *Container) (int, error) {
	first := c.State
	last := c.State
	for d := 2 * time.Millisecond; ; d = min(d*2, 100*time.Millisecond) {
		switch {
		case !last.Active():
			return last.ExitCode, nil
		case last.Generation != first.Generation,
			last.Status == StatusRestarting && first.Status == StatusRunning,
			!last.StartedAt.Equal(first.StartedAt):
			return last.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(d):
		}
		nc, err := r.Lookup(c.ID)
		if err != nil {
			var nf *NotFoundError
			if errors.As(err, &nf) {
				return last.ExitCode, nil // removed (--rm) meanwhile
			}
			return 0, err
		}
		last = nc.State
	}
}

// Restart stops the container (as Stop) and starts it again in the
// background.
func (r *Runtime) Restart(ctx context.Context, c *Container, o StopOptions) error {
	if err := r.Stop(ctx, c, o); err != nil {
		return err
	}
	r.refresh(c)
	return r.Start(ctx, c)
}

// waitSupervisor waits until the process that supervises the container
// (a foreground nook, or the monitor) has ended, at most timeout; a
// monitor still there after that is killed. Then it re-reads the state.
func (r *Runtime) waitSupervisor(c *Container, timeout time.Duration) {
	owner, start := c.State.Owner, c.State.OwnerStart
	if owner > 0 && owner != os.Getpid() && alive(owner, start) {
		if !waitGone(owner, start, timeout) && c.State.Detached {
			_ = unix.Kill(owner, unix.SIGKILL)
			waitGone(owner, start, time.Second)
		}
	}
	r.refresh(c)
}

// waitGoneCtx is waitGone that also ends when ctx does.
func waitGoneCtx(ctx context.Context, pid int, start uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	if timeout > 365*24*time.Hour {
		deadline = time.Now().Add(365 * 24 * time.Hour)
	}
	for d := time.Millisecond; time.Now().Before(deadline); d = min(d*2, 50*time.Millisecond) {
		if !alive(pid, start) {
			return true
		}
		select {
		case <-ctx.Done():
			return !alive(pid, start)
		case <-time.After(min(d, time.Until(deadline))):
		}
	}
	return !alive(pid, start)
}

// StartErrorCode is the exit code docker gives a failed start: 126 or 127
// for a command that cannot be invoked or is not found, else 125.
func StartErrorCode(err error) int {
	var ie *initError
	if errors.As(err, &ie) && ie.Code != 0 {
		return ie.Code
	}
	return codeFailed
}
