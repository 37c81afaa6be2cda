package commands

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
	"github.com/nook-containers/nook/userns"
)

func cpCommand() *cli.Command {
	return &cli.Command{
		Name:  "cp",
		Usage: "copy files between a container and the host",
		UsageText: `nook cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
nook cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH`,
		Description: `Copies files and directories, as docker cp does, for running and stopped
containers alike. "-" reads or writes a tar stream. A source directory is
copied with its name ("dir") or its content only ("dir/."); a destination
that ends in "/" must be a directory. Links inside the container resolve
in the container: none leads to a host file.

Files copied into a container keep the owners the copy gives them (with
-a: the container's user and group); files copied out belong to you.

Examples:
  nook cp web:/etc/hosts .
  nook cp ./site/. web:/www/
  nook cp web:/var/log - | tar -tv`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "archive", Aliases: []string{"a"}, Usage: "files copied into the container belong to its user"},
			&cli.BoolFlag{Name: "follow-link", Aliases: []string{"L"}, Usage: "always follow a symbolic link at SRC_PATH"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing (nook prints nothing anyway)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError(c, "\"cp\" requires exactly 2 arguments")
			}
			srcCtr, src := splitCpArg(c.Args().Get(0))
			dstCtr, dst := splitCpArg(c.Args().Get(1))
			switch {
			case srcCtr != "" && dstCtr != "":
				return usageError(c, "copying between containers is not supported")
			case srcCtr == "" && dstCtr == "":
				return usageError(c, "must specify at least one container source")
			}
			o := runner.CopyOptions{Archive: c.Bool("archive"), FollowLink: c.Bool("follow-link"), Stdin: c.App.Reader, Stdout: c.App.Writer}
			return withStore(c, func(s *store.Store) error {
				rt := &runner.Runtime{Store: s, Rootless: userns.Rootless(), ScratchDir: userns.RuntimeDir()}
				ref := srcCtr + dstCtr
				ctr, err := rt.Lookup(ref)
				if err != nil {
					return runError(err)
				}
				if srcCtr != "" {
					err = rt.CopyFromContainer(ctr, src, dst, o)
				} else {
					err = rt.CopyToContainer(ctr, src, dst, o)
				}
				if err != nil {
					return runError(err)
				}
				return nil
			})
		},
	}
}

// splitCpArg is docker's: CONTAINER:PATH, unless the argument is an
// absolute path or an explicitly relative one (./a:b).
func splitCpArg(arg string) (container, path string) {
	if strings.HasPrefix(arg, "/") {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok || strings.HasPrefix(ctr, ".") {
		return "", arg
	}
	return ctr, p
}
