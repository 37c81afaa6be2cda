package commands

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/nook-containers/nook/pusher"
	"github.com/nook-containers/nook/store"
)

// registryFlags are the flags every command that talks to a registry has.
func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "require HTTPS and verify certificates (false also allows plain HTTP)"},
		&cli.StringFlag{Name: "authfile", Usage: "credentials file (default: $REGISTRY_AUTH_FILE, else ~/.docker/config.json)", EnvVars: []string{pusher.AuthFileEnv}},
		&cli.StringFlag{Name: "creds", Usage: "`USER[:PASSWORD]` for the registry, instead of stored credentials"},
		&cli.IntFlag{Name: "jobs", Value: 3, Usage: "blobs to transfer at once"},
		&cli.IntFlag{Name: "retry", Value: 3, Usage: "retries after a transient failure (dropped connection, 5xx)"},
		&cli.DurationFlag{Name: "retry-delay", Value: time.Second, Usage: "first delay between retries (doubling)"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no progress"},
	}
}

// registryOptions turns the registry flags into pusher options.
func registryOptions(c *cli.Context) (pusher.Options, error) {
	o := pusher.Options{
		Insecure:   !c.Bool("tls-verify"),
		AuthFile:   c.String("authfile"),
		Jobs:       c.Int("jobs"),
		Retries:    c.Int("retry"),
		RetryDelay: c.Duration("retry-delay"),
		Progress:   c.App.Writer,
		Terminal:   writerIsTerminal(c.App.Writer),
		Quiet:      c.Bool("quiet"),
	}
	if o.Jobs < 1 {
		return o, usageError(c, "--jobs must be at least 1")
	}
	if o.Retries == 0 {
		o.Retries = -1 // --retry 0: none
	}
	if creds := c.String("creds"); creds != "" {
		user, pass, ok := strings.Cut(creds, ":")
		if !ok {
			var err error
			if pass, err = readPassword(c, "Password: "); err != nil {
				return o, err
			}
		}
		if user == "" || pass == "" {
			return o, usageError(c, "--creds needs USER:PASSWORD")
		}
		o.Keychain = pusher.CredentialsKeychain(user, pass)
	}
	return o, nil
}

func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "download an image from a registry",
		UsageText: "nook pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Description: `A short name is looked up in the unqualified-search registries of
registries.conf (default docker.io: busybox is docker.io/library/busybox:latest);
mirrors and insecure registries come from the same file (docs/registries.md).
Layers already in the store are not downloaded again. The last line printed is
the image's full name.

Examples:
  nook pull busybox
  nook pull localhost:5000/team/app:1 --tls-verify=false
  nook pull --platform linux/arm64 registry.example.com/app
  nook pull registry.example.com/app@sha256:0123...`,
		Flags: append(registryFlags(),
			&cli.StringFlag{Name: "platform", Usage: "pick `OS/ARCH[/VARIANT]` from a multi-platform image (default: the host's)"},
			&cli.BoolFlag{Name: "all-tags", Aliases: []string{"a"}, Usage: "pull every tag of the repository"},
		),
		Action: pullAction,
	}
}

func pullAction(c *cli.Context) error {
	args, err := positionalArgs(c)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usageError(c, "pull needs exactly one image name")
	}
	o, err := registryOptions(c)
	if err != nil {
		return err
	}
	o.Platform = c.String("platform")
	if _, err := pusher.ParsePlatform(o.Platform); err != nil {
		return usageError(c, "%v", err)
	}
	ref := args[0]
	return withStore(c, func(s *store.Store) error {
		if c.Bool("all-tags") {
			names, err := pusher.PullAllTags(c.Context, s, ref, o)
			for _, n := range names {
				fmt.Fprintln(c.App.Writer, n)
			}
			return err
		}
		res, err := pusher.PullImage(c.Context, s, ref, o)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, res.Name)
		return nil
	})
}

// readPassword reads a password from the terminal without echo, or a line
// from standard input.
func readPassword(c *cli.Context, prompt string) (string, error) {
	in := c.App.Reader
	if f, ok := in.(*os.File); ok && writerIsTerminal(f) {
		fmt.Fprint(c.App.ErrWriter, prompt)
		fd := int(f.Fd())
		old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return "", err
		}
		noecho := *old
		noecho.Lflag &^= unix.ECHO
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noecho); err != nil {
			return "", err
		}
		defer func() {
			unix.IoctlSetTermios(fd, unix.TCSETS, old)
			fmt.Fprintln(c.App.ErrWriter)
		}()
	}
	line, err := readLine(in)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return line, nil
}

// readLine reads one line byte by byte (so nothing after it is consumed).
func readLine(r io.Reader) (string, error) {
	var sb strings.Builder
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			sb.WriteByte(b[0])
		}
		if errors.Is(err, io.EOF) {
			if sb.Len() == 0 {
				return "", io.ErrUnexpectedEOF
			}
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimSuffix(sb.String(), "\r"), nil
}

// positionalArgs returns the command's arguments with any flags written
// after them (docker allows "nook push IMG DEST --digestfile f") applied
// to c: urfave/cli stops parsing flags at the first argument.
func positionalArgs(c *cli.Context) ([]string, error) {
	var pos []string
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		nameVal := strings.TrimLeft(a, "-")
		fname, val, hasVal := strings.Cut(nameVal, "=")
		f := findFlag(c.Command.Flags, fname)
		if f == nil {
			return nil, usageError(c, "flag provided but not defined: -%s", fname)
		}
		if _, isBool := f.(*cli.BoolFlag); isBool {
			if !hasVal {
				val = "true"
			}
		} else if !hasVal {
			if i+1 >= len(args) {
				return nil, usageError(c, "flag needs an argument: %s", a)
			}
			i++
			val = args[i]
		}
		if err := c.Set(f.Names()[0], val); err != nil {
			return nil, usageError(c, "invalid value %q for flag %s: %v", val, a, err)
		}
	}
	return pos, nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}
