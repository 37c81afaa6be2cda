package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Health check statuses, as docker names them.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// docker's defaults and limits
const (
	defaultHealthInterval      = 30 * time.Second
	defaultHealthTimeout       = 30 * time.Second
	defaultHealthStartInterval = 5 * time.Second
	defaultHealthRetries       = 3
	healthLogEntries           = 5    // results kept
	healthOutputMax            = 4096 // bytes of output kept per result
)

// Healthcheck is a health check: docker's HealthConfig (durations in
// nanoseconds in JSON, as docker's inspect shows them).
type Healthcheck struct {
	// Test is ["NONE"], ["CMD", arg...] or ["CMD-SHELL", command].
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// Health is a container's health (docker's State.Health).
type Health struct {
	Status        string      `json:"Status"`
	FailingStreak int         `json:"FailingStreak"`
	Log           []HealthLog `json:"Log"`
}

// HealthLog is one health check's result.
type HealthLog struct {
	Start    time.Time `json:"Start"`
	End      time.Time `json:"End"`
	ExitCode int       `json:"ExitCode"`
	Output   string    `json:"Output"`
}

// healthRecord is health.json: the health of one run.
type healthRecord struct {
	Generation   int       `json:"generation"`
	RunStartedAt time.Time `json:"runStartedAt"`
	Health
}

// EffectiveHealthcheck merges the image's HEALTHCHECK and the --health-*
// flags as docker does: --no-healthcheck disables it, each flag that is
// set overrides the image's value. nil: no health check.
func EffectiveHealthcheck(img *v1.HealthConfig, o *Options) *Healthcheck {
	if o.NoHealthcheck {
		return nil
	}
	var h Healthcheck
	if img != nil {
		h = Healthcheck{Test: img.Test, Interval: img.Interval, Timeout: img.Timeout, StartPeriod: img.StartPeriod, Retries: img.Retries}
	}
	if f := o.Health; f != nil {
		if len(f.Test) > 0 {
			h.Test = f.Test
		}
		if f.Interval != 0 {
			h.Interval = f.Interval
		}
		if f.Timeout != 0 {
			h.Timeout = f.Timeout
		}
		if f.StartPeriod != 0 {
			h.StartPeriod = f.StartPeriod
		}
		if f.StartInterval != 0 {
			h.StartInterval = f.StartInterval
		}
		if f.Retries != 0 {
			h.Retries = f.Retries
		}
	}
	if len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil
	}
	return &h
}

// withDefaults fills in docker's defaults for the values left at zero.
func (h Healthcheck) withDefaults() Healthcheck {
	if h.Interval <= 0 {
		h.Interval = defaultHealthInterval
	}
	if h.Timeout <= 0 {
		h.Timeout = defaultHealthTimeout
	}
	if h.StartInterval <= 0 {
		h.StartInterval = defaultHealthStartInterval
	}
	if h.Retries <= 0 {
		h.Retries = defaultHealthRetries
	}
	return h
}

// probeCommand is the command a health check runs.
func (h *Healthcheck) probeCommand() ([]string, error) {
	if len(h.Test) < 2 {
		return nil, fmt.Errorf("health check %q has no command", h.Test)
	}
	switch h.Test[0] {
	case "CMD":
		return h.Test[1:], nil
	case "CMD-SHELL":
		return []string{"/bin/sh", "-c", h.Test[1]}, nil
	}
	return nil, fmt.Errorf("unknown health check type %q", h.Test[0])
}

// nextHealth is docker's health state machine: a success makes the
// container healthy; failures during the start period do not count; after
// Retries consecutive failures it is unhealthy.
func nextHealth(prev Health, res HealthLog, h Healthcheck, runStarted time.Time) Health {
	h = h.withDefaults()
	next := prev
	if next.Status == "" {
		next.Status = HealthStarting
	}
	next.Log = append(append([]HealthLog{}, prev.Log...), res)
	if len(next.Log) > healthLogEntries {
		next.Log = next.Log[len(next.Log)-healthLogEntries:]
	}
	if res.ExitCode == 0 {
		next.Status = HealthHealthy
		next.FailingStreak = 0
		return next
	}
	if next.Status == HealthStarting && res.Start.Before(runStarted.Add(h.StartPeriod)) {
		return next // still starting: failures are not counted
	}
	next.FailingStreak++
	if next.FailingStreak >= h.Retries {
		next.Status = HealthUnhealthy
	}
	return next
}

// Healthcheck runs the container's health check once and records the
// result (the monitor runs `nook container healthcheck` on schedule). The
// command runs in the container's namespaces, as `nook exec` does, and is
// killed after the timeout.
func (r *Runtime) Healthcheck(ctx context.Context, c *Container) error {
	if c.Healthcheck == nil {
		return userErr("container %s has no health check", c.Name)
	}
	if !c.State.Running() {
		return userErr("container %s is not running", c.Name)
	}
	h := c.Healthcheck.withDefaults()
	argv, err := c.Healthcheck.probeCommand()
	if err != nil {
		return err
	}
	gen, runStarted := c.State.Generation, c.State.StartedAt
	res := HealthLog{Start: time.Now().UTC()}
	var out limitedBuffer
	sigs := make(chan os.Signal, 1)
	timer := time.AfterFunc(h.Timeout, func() { sigs <- syscall.SIGKILL })
	code, err := r.Exec(ctx, c, &ExecOptions{Cmd: argv}, IO{Stdout: &out, Stderr: &out}, sigs)
	timedOut := !timer.Stop()
	res.End = time.Now().UTC()
	res.ExitCode, res.Output = code, out.String()
	switch {
	case timedOut:
		res.ExitCode = -1
		res.Output = fmt.Sprintf("Health check exceeded timeout (%s)", h.Timeout)
	case err != nil:
		var ie *initError
		if !errors.As(err, &ie) && code == codeFailed {
			res.Output = err.Error()
		} else if res.Output == "" {
			res.Output = err.Error()
		}
		if res.ExitCode == 0 {
			res.ExitCode = codeFailed
		}
	}
	unlock, err := lockState(c.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	var rec healthRecord
	if err := readJSON(c.Dir, fileHealth, &rec); err != nil || rec.Generation != gen || !rec.RunStartedAt.Equal(runStarted) {
		rec = healthRecord{Generation: gen, RunStartedAt: runStarted}
	}
	was := rec.Status
	rec.Health = nextHealth(rec.Health, res, h, runStarted)
	if err := writeJSON(c.Dir, fileHealth, &rec); err != nil {
		return err
	}
	if (was == "" || was == HealthStarting) && rec.Status != HealthStarting && alive(c.State.Owner, c.State.OwnerStart) {
		// The start interval ends with "starting" (see monitor.c).
		_ = unix.Kill(c.State.Owner, unix.SIGUSR2)
	}
	return nil
}

// limitedBuffer keeps the first healthOutputMax bytes written to it (by
// the stdout and the stderr copier at once).
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := healthOutputMax - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
