// Package commands is nook's command line: it parses flags into one Options
// value per operation and calls the library packages. It is the only
// package that imports the CLI framework.
package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/store"
	"github.com/nook-containers/nook/userns"
)

// Version is set at link time (-ldflags "-X ...commands.Version=...").
var Version = "0.1.0-dev"

// Exit codes, as docker's.
const (
	ExitError       = 125 // nook itself failed
	ExitCannotRun   = 126 // the container command cannot be invoked
	ExitNotFound    = 127 // the container command was not found
	exitUsageFailed = 125
)

// ExitCoder is an error that carries the process exit code (a container's).
type ExitCoder interface {
	error
	ExitCode() int
}

type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }

// Exit returns an error that makes nook exit with code, printing msg (if
// not empty) to standard error.
func Exit(code int, msg string) error { return &exitError{code: code, msg: msg} }

// Main runs nook with args and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := NewApp(stdin, stdout, stderr)
	err := app.RunContext(ctx, permuteArgs(app, args))
	if err == nil {
		return 0
	}
	var ec ExitCoder
	var helper *exec.ExitError
	// A helper process's exit status (storage's tar extraction, say) is
	// nook failing, not an exit code to pass on: only nook's own exit
	// errors and container statuses set the code.
	if errors.As(err, &ec) && !errors.As(ec, &helper) {
		// err, not ec: keep the context that wraps the exit error.
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "Error:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(stderr, "Error:", err)
	return ExitError
}

// NewApp builds the command tree.
func NewApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "nook",
		Usage:   "build, run and share containers as an ordinary user, with no daemon",
		Version: Version,
		Description: `nook speaks docker's command line. Each invocation is a short-lived process:
there is no daemon. As an unprivileged user, nook keeps a per-user namespace
(see 'nook info') and stores images under ~/.local/share/nook.

Examples:
  nook import rootfs.tar busybox
  nook images
  nook image inspect busybox --format '{{.Config.Cmd}}'
  nook unshare ls -ln ~/.local/share/nook`,
		Reader:                 stdin,
		Writer:                 stdout,
		ErrWriter:              stderr,
		EnableBashCompletion:   true,
		UseShortOptionHandling: true,
		// docker never splits flag values at commas (-e A=b,c; --mount).
		DisableSliceFlagSeparator: true,
		Suggest:                   true,
		HideHelpCommand:           false,
		ExitErrHandler:            func(*cli.Context, error) {}, // Main prints and maps errors
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Usage: "store directory for images and layers", EnvVars: []string{"NOOK_ROOT"}},
			&cli.StringFlag{Name: "runroot", Usage: "directory for volatile state (mount points)", EnvVars: []string{"NOOK_RUNROOT"}},
			&cli.StringFlag{Name: "storage-driver", Usage: "storage driver: overlay or vfs (default: the store's, else overlay where the kernel allows it)", EnvVars: []string{"NOOK_STORAGE_DRIVER"}},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "log messages at or above: debug, info, warn, error"},
		},
		Before: func(c *cli.Context) error {
			lvl, err := logrus.ParseLevel(c.String("log-level"))
			if err != nil {
				return Exit(exitUsageFailed, fmt.Sprintf("invalid --log-level %q: use debug, info, warn or error", c.String("log-level")))
			}
			logrus.SetLevel(lvl)
			logrus.SetOutput(stderr)
			return nil
		},
	}
	app.Commands = allCommands()
	for _, cmd := range app.Commands {
		decorate(cmd)
	}
	return app
}

// allCommands lists every top-level command. Each lives in its own file.
func allCommands() []*cli.Command {
	return []*cli.Command{
		infoCommand(),
		imageCommand(),
		imagesCommand("images"),
		importCommand(),
		tagCommand(),
		rmiCommand("rmi"),
		inspectCommand(),
		versionCommand(),
		unshareCommand(),
		systemCommand(),
		completionCommand(),
		buildCommand(),
		historyCommand(),
		builderCommand(),
		pullCommand(),
		pushCommand(),
		loginCommand(),
		logoutCommand(),
		saveCommand(),
		loadCommand(),
		runCommand(), createCommand(), startCommand(), psCommand("ps"), rmCommand("rm"), containerCommand(), volumeCommand(),
		networkCommand(),
		stopCommand(), killCommand(), waitCommand(), restartCommand(), logsCommand(),
		execCommand(), topCommand(), portCommand(), renameCommand(), cpCommand(), exportCommand(), commitCommand(),
	}
}

// decorate makes help uniform: every command gets "-h".
func decorate(c *cli.Command) {
	c.HideHelpCommand = true
	for _, sc := range c.Subcommands {
		decorate(sc)
	}
}

// needsNamespace joins (or starts) the per-user namespace; call it first in
// every command that touches the store or runs containers.
func needsNamespace(c *cli.Context) error {
	if err := userns.Ensure(c.App.ErrWriter); err != nil {
		return Exit(ExitError, err.Error())
	}
	return nil
}

// storeOptions resolves the global store flags.
func storeOptions(c *cli.Context) store.Options {
	o := store.Options{
		Root:    c.String("root"),
		RunRoot: c.String("runroot"),
		Driver:  c.String("storage-driver"),
	}
	if o.Root == "" {
		o.Root = filepath.Join(userns.DataDir(), "storage")
	}
	if o.RunRoot == "" {
		o.RunRoot = defaultRunRoot(o.Root)
	}
	o.SquashOwners = userns.Rootless() && userns.MappingAdvice() != ""
	return o
}

// defaultRunRoot keeps one run root per store root, on the holder's tmpfs
// when rootless, so that mount counts die with the mounts.
func defaultRunRoot(root string) string {
	base := filepath.Join(userns.RuntimeDir(), "volatile")
	if !userns.Rootless() {
		base = userns.RuntimeDir()
	}
	def := filepath.Join(userns.DataDir(), "storage")
	if filepath.Clean(root) == def {
		return filepath.Join(base, "storage")
	}
	return filepath.Join(base, "storage-"+shortHash(filepath.Clean(root)))
}

// openStore joins the namespace and opens the store.
func openStore(c *cli.Context) (*store.Store, error) {
	if err := needsNamespace(c); err != nil {
		return nil, err
	}
	s, err := store.Open(storeOptions(c))
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w (hint: files in the store belong to your subordinate ids; see docs/rootless.md)", err)
		}
		return nil, err
	}
	return s, nil
}

// withStore runs fn with an open store and closes it.
func withStore(c *cli.Context, fn func(*store.Store) error) error {
	s, err := openStore(c)
	if err != nil {
		return err
	}
	err = fn(s)
	if cerr := s.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// usageError reports a command-line mistake with exit code 125 and the
// command's usage hint.
func usageError(c *cli.Context, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	if c.Command != nil && c.Command.Name != "" {
		msg += fmt.Sprintf("\nSee 'nook %s --help'.", strings.TrimPrefix(c.Command.HelpName, "nook "))
	}
	return Exit(exitUsageFailed, msg)
}
