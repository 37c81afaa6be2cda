package commands

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
)

// eachContainer runs fn for every CONTAINER argument as docker does:
// errors are printed and the others still handled; the names that
// succeeded are printed; the exit code is 1 if any failed.
func eachContainer(c *cli.Context, fn func(rt *runner.Runtime, ctr *runner.Container) error) error {
	return forContainers(c, false, func(rt *runner.Runtime, ref string, ctr *runner.Container) (string, error) {
		return ref, fn(rt, ctr)
	})
}

// forContainers is eachContainer with fn choosing the line printed for a
// container; with missingOK, a container that does not exist is skipped
// in silence (docker's rm -f).
func forContainers(c *cli.Context, missingOK bool, fn func(rt *runner.Runtime, ref string, ctr *runner.Container) (string, error)) error {
	return withStore(c, func(s *store.Store) error {
		rt, err := newRuntime(c, s, "")
		if err != nil {
			return err
		}
		failed := false
		for _, ref := range c.Args().Slice() {
			ctr, err := rt.Lookup(ref)
			var out string
			if err == nil {
				out, err = fn(rt, ref, ctr)
			}
			var nf *runner.NotFoundError
			switch {
			case err != nil && missingOK && errors.As(err, &nf):
			case err != nil:
				fmt.Fprintln(c.App.ErrWriter, "Error:", err)
				failed = true
			default:
				fmt.Fprintln(c.App.Writer, out)
			}
		}
		if failed {
			return Exit(1, "")
		}
		return nil
	})
}

func stopFlags(what string) []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "time", Aliases: []string{"t"}, Usage: "seconds to wait for the container to " + what + " before killing it (default: its --stop-timeout, else 10)"},
		&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Usage: "signal to send (default: the container's stop signal, else SIGTERM)"},
	}
}

func stopOptions(c *cli.Context) (runner.StopOptions, error) {
	var o runner.StopOptions
	if c.IsSet("time") {
		t := c.Int("time")
		o.Timeout = &t
	}
	if s := c.String("signal"); s != "" {
		if _, err := runner.ParseSignal(s); err != nil {
			return o, usageError(c, "%v", err)
		}
		o.Signal = s
	}
	return o, nil
}

func stopCommand() *cli.Command {
	return &cli.Command{
		Name:      "stop",
		Usage:     "stop running containers",
		UsageText: "nook stop [-t SECONDS] [-s SIGNAL] CONTAINER [CONTAINER...]",
		Description: `Sends the container's stop signal (--stop-signal, the image's STOPSIGNAL, else
SIGTERM), waits for it to exit (-t, else its --stop-timeout, else 10 seconds),
then kills it. A restart policy does not restart a stopped container until it
is started again.

Examples:
  nook stop web
  nook stop -t 2 web db`,
		Flags:  stopFlags("stop"),
		Action: stopAction("stop", (*runner.Runtime).Stop),
	}
}

func restartCommand() *cli.Command {
	return &cli.Command{
		Name:      "restart",
		Usage:     "restart containers",
		UsageText: "nook restart [-t SECONDS] [-s SIGNAL] CONTAINER [CONTAINER...]",
		Description: `Stops each container as 'nook stop' does, then starts it in the background.

Examples:
  nook restart web
  nook restart -t 0 web`,
		Flags:  stopFlags("stop"),
		Action: stopAction("restart", (*runner.Runtime).Restart),
	}
}

func killCommand() *cli.Command {
	return &cli.Command{
		Name:      "kill",
		Usage:     "send a signal to running containers",
		UsageText: "nook kill [-s SIGNAL] CONTAINER [CONTAINER...]",
		Description: `Sends SIGKILL, or the signal given, to each container's main process. A
terminating signal (KILL, TERM, INT, QUIT or the stop signal) counts as a
stop: the restart policy does not restart the container; others, such as
USR1, leave it in place.

Examples:
  nook kill web
  nook kill -s USR1 web`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Value: "KILL", Usage: "signal to send"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return usageError(c, "kill needs at least 1 argument")
			}
			sig, err := runner.ParseSignal(c.String("signal"))
			if err != nil {
				return usageError(c, "%v", err)
			}
			return eachContainer(c, func(rt *runner.Runtime, ctr *runner.Container) error {
				return rt.Kill(c.Context, ctr, sig)
			})
		},
	}
}

func waitCommand() *cli.Command {
	return &cli.Command{
		Name:      "wait",
		Usage:     "wait until containers stop, then print their exit codes",
		UsageText: "nook wait CONTAINER [CONTAINER...]",
		Description: `Examples:
  nook run -d --name job busybox sh -c 'sleep 1; exit 3'
  nook wait job`,
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return usageError(c, "wait needs at least 1 argument")
			}
			return forContainers(c, false, func(rt *runner.Runtime, _ string, ctr *runner.Container) (string, error) {
				code, err := rt.Wait(c.Context, ctr)
				return strconv.Itoa(code), err
			})
		},
	}
}

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "show a container's output",
		UsageText: "nook logs [-f] [--tail N] [--since TIME] [--until TIME] [-t] CONTAINER",
		Description: `Prints what a detached container wrote: its stdout to stdout, its stderr to
stderr (json-file logs, as docker's). TIME is an RFC 3339 date or time, a
Unix timestamp, or a duration back from now (10m, 1h30m).

Examples:
  nook logs web
  nook logs -f --tail 10 web
  nook logs --since 5m -t web`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "follow the output until the container stops"},
			&cli.StringFlag{Name: "tail", Aliases: []string{"n"}, Value: "all", Usage: "number of lines to show from the end"},
			&cli.StringFlag{Name: "since", Usage: "show records since TIME"},
			&cli.StringFlag{Name: "until", Usage: "show records before TIME"},
			&cli.BoolFlag{Name: "timestamps", Aliases: []string{"t"}, Usage: "show timestamps"},
			&cli.BoolFlag{Name: "details", Usage: "accepted for docker compatibility (no extra attributes are logged)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "logs needs exactly 1 argument")
			}
			o := runner.LogsOptions{Follow: c.Bool("follow"), Timestamps: c.Bool("timestamps"), Tail: -1,
				Stdout: c.App.Writer, Stderr: c.App.ErrWriter}
			if t := c.String("tail"); t != "all" && t != "" {
				n, err := strconv.Atoi(t)
				if err != nil {
					return usageError(c, "invalid --tail %q: a number or all", t)
				}
				o.Tail = n
			}
			var err error
			now := time.Now()
			if o.Since, err = parseTimeArg(c.String("since"), now); err != nil {
				return usageError(c, "invalid --since: %v", err)
			}
			if o.Until, err = parseTimeArg(c.String("until"), now); err != nil {
				return usageError(c, "invalid --until: %v", err)
			}
			return withStore(c, func(s *store.Store) error {
				rt := &runner.Runtime{Store: s}
				ctr, err := rt.Lookup(c.Args().First())
				if err != nil {
					return runError(err)
				}
				if err := rt.Logs(c.Context, ctr, o); err != nil {
					return runError(err)
				}
				return nil
			})
		},
	}
}

// parseTimeArg reads --since/--until as docker does: a duration back from
// now, an RFC 3339 date-time (or date), or a Unix timestamp.
func parseTimeArg(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "eE") {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use 2006-01-02T15:04:05Z, a Unix timestamp or a duration such as 10m", s)
}

// containerCleanupCommand and containerHealthcheckCommand are run by a
// detached container's monitor; users do not type them.
func containerCleanupCommand() *cli.Command {
	return &cli.Command{
		Name: "cleanup", Hidden: true, Usage: "release what a stopped container holds (run by its monitor)",
		Action: func(c *cli.Context) error {
			return withStore(c, func(s *store.Store) error {
				rt, err := newRuntime(c, s, "")
				if err != nil {
					return err
				}
				ctr, err := rt.Lookup(c.Args().First())
				if err != nil {
					var nf *runner.NotFoundError
					if errors.As(err, &nf) {
						return nil // removed meanwhile
					}
					return err
				}
				return rt.Cleanup(c.Context, ctr)
			})
		},
	}
}

func containerHealthcheckCommand() *cli.Command {
	return &cli.Command{
		Name: "healthcheck", Hidden: true, Usage: "run a container's health check once (run by its monitor)",
		Action: func(c *cli.Context) error {
			return withStore(c, func(s *store.Store) error {
				rt, err := newRuntime(c, s, "")
				if err != nil {
					return err
				}
				ctr, err := rt.Lookup(c.Args().First())
				if err != nil {
					return err
				}
				if err := rt.Healthcheck(c.Context, ctr); err != nil {
					return runError(err)
				}
				return nil
			})
		},
	}
}

// stopAction is the action of stop and restart: parse the stop flags, then
// do it to each container named.
func stopAction(verb string, do func(*runner.Runtime, context.Context, *runner.Container, runner.StopOptions) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() < 1 {
			return usageError(c, "%s needs at least 1 argument", verb)
		}
		o, err := stopOptions(c)
		if err != nil {
			return err
		}
		return eachContainer(c, func(rt *runner.Runtime, ctr *runner.Container) error {
			return do(rt, c.Context, ctr, o)
		})
	}
}
