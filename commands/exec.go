package commands

import (
	"fmt"
	"os"
	"os/signal"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
	"github.com/nook-containers/nook/userns"
)

func execCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command in a running container",
		UsageText: "nook exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Description: `Runs COMMAND inside a running container: in its namespaces, as its user
(or -u), with its capabilities, seccomp filter and environment (plus -e).
This nook process waits for the command, copies its streams, forwards
signals and exits with its exit code: 126 if it cannot be invoked, 127 if
it is not found, 125 if nook failed (the container is not running, say).
With -d it starts the command and returns; the container's pid 1 is then
its parent, as it is for any process of the container whose parent ends.

Examples:
  nook exec web cat /etc/hostname
  nook exec -it web sh
  nook exec -u 1000 -w /tmp -e X=1 web id
  nook exec -d web touch /tmp/started`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep stdin open"},
			&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-terminal"},
			&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run the command in the background"},
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "user[:group], names from the container's /etc/passwd or numbers"},
			&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory inside the container"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable (VAR=value, or VAR to pass it on)"},
			&cli.StringSliceFlag{Name: "env-file", Usage: "read environment variables from a file"},
			&cli.BoolFlag{Name: "privileged", Usage: "give the command every capability"},
			&cli.StringFlag{Name: "detach-keys", Usage: "accepted for docker compatibility; ignored"},
		},
		Action: execAction,
	}
}

// execOptions turns the flags into runner.ExecOptions.
func execOptions(c *cli.Context) (string, *runner.ExecOptions, error) {
	if c.NArg() < 2 {
		return "", nil, usageError(c, "%q requires at least 2 arguments: CONTAINER COMMAND [ARG...]", c.Command.Name)
	}
	o := &runner.ExecOptions{
		Cmd: c.Args().Slice()[1:], Interactive: c.Bool("interactive"), Tty: c.Bool("tty"), Detach: c.Bool("detach"),
		User: c.String("user"), WorkingDir: c.String("workdir"), Privileged: c.Bool("privileged"),
	}
	for _, f := range c.StringSlice("env-file") {
		fh, err := os.Open(f)
		if err != nil {
			return "", nil, Exit(ExitError, fmt.Sprintf("opening the env file: %v", err))
		}
		env, err := runner.ParseEnvFile(fh, f, os.LookupEnv)
		fh.Close()
		if err != nil {
			return "", nil, Exit(ExitError, err.Error())
		}
		o.Env = append(o.Env, env...)
	}
	for _, e := range c.StringSlice("env") {
		kv, ok, err := runner.ParseEnv(e, os.LookupEnv)
		if err != nil {
			return "", nil, usageError(c, "%v", err)
		}
		if ok {
			o.Env = append(o.Env, kv)
		}
	}
	return c.Args().First(), o, nil
}

func execAction(c *cli.Context) error {
	ref, o, err := execOptions(c)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
	defer signal.Stop(sigs)
	return withStore(c, func(s *store.Store) error {
		rt := &runner.Runtime{Store: s, Rootless: userns.Rootless(), ScratchDir: userns.RuntimeDir()}
		ctr, err := rt.Lookup(ref)
		if err != nil {
			return runError(err)
		}
		ro := &runner.Options{Tty: o.Tty, Interactive: o.Interactive}
		code, err := rt.Exec(c.Context, ctr, o, attachIO(c, ro), sigs)
		if err != nil {
			return Exit(code, err.Error())
		}
		if code != 0 {
			return Exit(code, "")
		}
		return nil
	})
}
