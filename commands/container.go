package commands

import (
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
)

func startCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "start created or stopped containers",
		UsageText: "nook start [-a [-i]] CONTAINER [CONTAINER...]",
		Description: `Starts each container in the background, under its monitor (see 'nook run -d').
With -a, starts one container in the foreground instead: this nook process
supervises it, as 'nook run' does, and exits with its exit code.

Examples:
  nook create --name web busybox httpd -f
  nook start web
  nook create --name job busybox sh -c 'echo hi'
  nook start -a job`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "attach", Aliases: []string{"a"}, Usage: "attach stdout/stderr and forward signals"},
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "attach stdin"},
		},
		Action: func(c *cli.Context) error {
			if !c.Bool("attach") {
				if c.NArg() < 1 {
					return usageError(c, "start needs at least 1 argument")
				}
				return eachContainer(c, func(rt *runner.Runtime, ctr *runner.Container) error {
					if err := rt.Start(c.Context, ctr); err != nil {
						return startError(err)
					}
					return nil
				})
			}
			if c.NArg() != 1 {
				return usageError(c, "start -a needs exactly 1 argument")
			}
			sigs := make(chan os.Signal, 16)
			signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
			defer signal.Stop(sigs)
			return withStore(c, func(s *store.Store) error {
				rt, err := newRuntime(c, s, "")
				if err != nil {
					return err
				}
				ctr, err := rt.Lookup(c.Args().First())
				if err != nil {
					return runError(err)
				}
				if c.Bool("interactive") {
					ctr.Options.Interactive = true
				}
				code, runErr := rt.StartAttached(c.Context, ctr, attachIO(c, &ctr.Options), sigs)
				if ctr.Options.Remove {
					_ = rt.Remove(c.Context, ctr, runner.RemoveOptions{Force: true, Volumes: true})
				}
				if runErr != nil {
					return Exit(code, runErr.Error())
				}
				if code != 0 {
					return Exit(code, "")
				}
				return nil
			})
		},
	}
}

func containerPruneCommand() *cli.Command {
	return &cli.Command{
		Name:      "prune",
		Usage:     "remove every stopped container",
		UsageText: "nook container prune [-f]",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"}},
		Action: func(c *cli.Context) error {
			if !c.Bool("force") && !confirm(c, "WARNING! This will remove all stopped containers.") {
				return nil
			}
			return withStore(c, func(s *store.Store) error {
				rt, err := newRuntime(c, s, "")
				if err != nil {
					return err
				}
				cs, err := rt.List()
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, "Deleted Containers:")
				for _, ctr := range cs {
					if ctr.State.Active() {
						continue
					}
					if err := rt.Remove(c.Context, ctr, runner.RemoveOptions{}); err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, ctr.ID)
				}
				return nil
			})
		},
	}
}

// containerCommand groups the container commands as docker's
// 'docker container ...'.
func containerCommand() *cli.Command {
	ls := psCommand("ls")
	ls.Aliases = []string{"list", "ps"}
	inspect := inspectCommand()
	inspect.Usage = "show low-level information on containers"
	return &cli.Command{
		Name:  "container",
		Usage: "manage containers",
		Subcommands: []*cli.Command{
			runCommand(), createCommand(), startCommand(), ls, rmCommand("rm"), inspect, containerPruneCommand(),
			stopCommand(), killCommand(), waitCommand(), restartCommand(), logsCommand(),
			containerCleanupCommand(), containerHealthcheckCommand(),
		},
	}
}

func volumeCommand() *cli.Command {
	return &cli.Command{
		Name:  "volume",
		Usage: "manage named volumes",
		Description: `Named volumes live in the store and outlive containers. On first use a
volume is filled with what the image has at the mount point (unless nocopy).

Examples:
  nook volume create data
  nook run --rm -v data:/data busybox sh -c 'echo hi > /data/f'
  nook volume ls
  nook volume rm data`,
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a volume", UsageText: "nook volume create [--label K=V] [NAME]",
				Flags: []cli.Flag{&cli.StringSliceFlag{Name: "label", Usage: "set a label: KEY=VALUE"}},
				Action: func(c *cli.Context) error {
					labels := map[string]string{}
					for _, l := range c.StringSlice("label") {
						k, v, _ := strings.Cut(l, "=")
						labels[k] = v
					}
					return withStore(c, func(s *store.Store) error {
						v, _, err := (&runner.Runtime{Store: s}).VolumeCreate(c.Args().First(), labels)
						if err != nil {
							return runError(err)
						}
						fmt.Fprintln(c.App.Writer, v.Name)
						return nil
					})
				},
			},
			{
				Name: "ls", Aliases: []string{"list"}, Usage: "list volumes", UsageText: "nook volume ls [-q] [--format TEMPLATE]",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only print names"}, formatFlag()},
				Action: func(c *cli.Context) error {
					return withStore(c, func(s *store.Store) error {
						vs, err := (&runner.Runtime{Store: s}).Volumes()
						if err != nil {
							return err
						}
						if c.Bool("quiet") {
							for _, v := range vs {
								fmt.Fprintln(c.App.Writer, v.Name)
							}
							return nil
						}
						if f := c.String("format"); f != "" {
							items := make([]any, len(vs))
							for i, v := range vs {
								items[i] = v
							}
							return printFormatted(c, f, items)
						}
						t := newTable(c.App.Writer, "DRIVER", "VOLUME NAME")
						for _, v := range vs {
							t.row(v.Driver, v.Name)
						}
						return t.flush()
					})
				},
			},
			{
				Name: "inspect", Usage: "show volumes", UsageText: "nook volume inspect [--format TEMPLATE] NAME [NAME...]",
				Flags: []cli.Flag{formatFlag()},
				Action: func(c *cli.Context) error {
					if c.NArg() < 1 {
						return usageError(c, "volume inspect needs at least 1 argument")
					}
					return withStore(c, func(s *store.Store) error {
						var docs []any
						failed := false
						for _, n := range c.Args().Slice() {
							v, err := (&runner.Runtime{Store: s}).VolumeInspect(n)
							if err != nil {
								fmt.Fprintln(c.App.ErrWriter, "Error:", err)
								failed = true
								continue
							}
							docs = append(docs, v)
						}
						if err := printInspect(c, docs); err != nil {
							return err
						}
						if failed {
							return Exit(1, "")
						}
						return nil
					})
				},
			},
			{
				Name: "rm", Aliases: []string{"remove"}, Usage: "remove volumes", UsageText: "nook volume rm [-f] NAME [NAME...]",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "no error for a missing volume"}},
				Action: func(c *cli.Context) error {
					if c.NArg() < 1 {
						return usageError(c, "volume rm needs at least 1 argument")
					}
					return withStore(c, func(s *store.Store) error {
						failed := false
						for _, n := range c.Args().Slice() {
							err := (&runner.Runtime{Store: s}).VolumeRemove(n, c.Bool("force"))
							if err != nil {
								if _, ok := err.(*runner.VolumeNotFoundError); ok && c.Bool("force") {
									continue
								}
								fmt.Fprintln(c.App.ErrWriter, "Error:", err)
								failed = true
								continue
							}
							fmt.Fprintln(c.App.Writer, n)
						}
						if failed {
							return Exit(1, "")
						}
						return nil
					})
				},
			},
			{
				Name: "prune", Usage: "remove unused volumes (anonymous ones; -a: all)", UsageText: "nook volume prune [-a] [-f]",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "also named volumes"},
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
				},
				Action: func(c *cli.Context) error {
					if !c.Bool("force") && !confirm(c, "WARNING! This will remove unused volumes.") {
						return nil
					}
					return withStore(c, func(s *store.Store) error {
						names, err := (&runner.Runtime{Store: s}).VolumePrune(c.Bool("all"))
						fmt.Fprintln(c.App.Writer, "Deleted Volumes:")
						for _, n := range names {
							fmt.Fprintln(c.App.Writer, n)
						}
						return err
					})
				},
			},
		},
	}
}
