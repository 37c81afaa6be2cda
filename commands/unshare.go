package commands

import (
	"errors"
	"os"
	"os/exec"

	"github.com/urfave/cli/v2"
)

func unshareCommand() *cli.Command {
	return &cli.Command{
		Name:      "unshare",
		Usage:     "run a command inside the user's namespace (as uid 0 there)",
		UsageText: "nook unshare [COMMAND [ARG...]]",
		Description: `Runs COMMAND (default: $SHELL) with the user's id mapped to root, so that files
in the store, which belong to subordinate ids, can be listed and removed.

Examples:
  nook unshare ls -ln ~/.local/share/nook
  nook unshare rm -rf ~/.local/share/nook/storage`,
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			// Flags are not parsed (they belong to COMMAND), but help is.
			if len(args) == 1 && (args[0] == "--help" || args[0] == "-h") {
				return cli.ShowSubcommandHelp(c)
			}
			if err := needsNamespace(c); err != nil {
				return err
			}
			if len(args) == 0 {
				sh := os.Getenv("SHELL")
				if sh == "" {
					sh = "/bin/sh"
				}
				args = []string{sh}
			}
			cmd := exec.CommandContext(c.Context, args[0], args[1:]...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = c.App.Reader, c.App.Writer, c.App.ErrWriter
			err := cmd.Run()
			var ee *exec.ExitError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &ee):
				return Exit(ee.ExitCode(), "")
			case errors.Is(err, exec.ErrNotFound):
				return Exit(ExitNotFound, err.Error())
			default:
				return Exit(ExitCannotRun, err.Error())
			}
		},
	}
}
