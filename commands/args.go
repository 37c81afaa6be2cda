package commands

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// stopAtFirstArg are the commands whose flags end at the first argument,
// because what follows belongs to the container's command (docker's
// SetInterspersed(false)).
var stopAtFirstArg = map[string]bool{"run": true, "create": true, "exec": true, "unshare": true}

// permuteArgs moves the flags of the command that args select in front of
// its arguments, so that "nook images busybox --format x" parses as docker
// parses it. urfave/cli, like Go's flag package, stops at the first
// argument. "--" ends the flags; a value that looks like a flag is kept
// with its flag.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	i := 1
	// Global flags, then the command path.
	i = copyFlags(&out, args, i, app.Flags)
	cmds := app.Commands
	var leaf *cli.Command
	for i < len(args) {
		c := findCommand(cmds, args[i])
		if c == nil {
			break
		}
		out = append(out, args[i])
		i++
		leaf = c
		if len(c.Subcommands) == 0 {
			break
		}
		i = copyFlags(&out, args, i, c.Flags)
		cmds = c.Subcommands
	}
	if leaf == nil || leaf.SkipFlagParsing || stopAtFirstArg[leaf.Name] || len(leaf.Subcommands) > 0 {
		return append(out, args[i:]...)
	}
	var flags, pos []string
	for i < len(args) {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' {
			flags = append(flags, a)
			if takesValue(leaf.Flags, a) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			i++
			continue
		}
		pos = append(pos, a)
		i++
	}
	out = append(out, flags...)
	return append(out, pos...)
}

// copyFlags copies the flags at args[i:] (up to the first non-flag) to out.
func copyFlags(out *[]string, args []string, i int, defs []cli.Flag) int {
	for i < len(args) && len(args[i]) > 1 && args[i][0] == '-' && args[i] != "--" {
		*out = append(*out, args[i])
		if takesValue(defs, args[i]) && i+1 < len(args) {
			*out = append(*out, args[i+1])
			i++
		}
		i++
	}
	return i
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
		for _, a := range c.Aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

// takesValue reports whether the flag word a ("-f", "--format", "-qf")
// consumes the next argument.
func takesValue(defs []cli.Flag, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	if strings.HasPrefix(a, "--") {
		return flagTakesValue(defs, a[2:])
	}
	// A cluster of short flags: only its last letter may take a value.
	name := a[1:]
	if len(name) > 1 {
		if f := lookupFlag(defs, name); f != nil {
			return flagTakesValue(defs, name)
		}
		name = name[len(name)-1:]
	}
	return flagTakesValue(defs, name)
}

func lookupFlag(defs []cli.Flag, name string) cli.Flag {
	for _, f := range defs {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func flagTakesValue(defs []cli.Flag, name string) bool {
	f := lookupFlag(defs, name)
	if f == nil {
		return false
	}
	if dg, ok := f.(cli.DocGenerationFlag); ok {
		return dg.TakesValue()
	}
	return true
}
