package commands

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/pusher"
)

func loginCommand() *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "log in to a registry",
		UsageText: "nook login [OPTIONS] [REGISTRY]",
		Description: `Checks the user name and password with the registry (default docker.io)
and stores them, mode 0600, in the credentials file: --authfile, else
$REGISTRY_AUTH_FILE, else docker's ~/.docker/config.json (honouring its
credential helpers). nook also reads containers' auth.json files
($XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json).
Credentials are never printed or logged.

Examples:
  echo "$TOKEN" | nook login -u me --password-stdin localhost:5000
  nook login registry.example.com          # asks for user name and password`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "username", Aliases: []string{"u"}, Usage: "user name"},
			&cli.StringFlag{Name: "password", Aliases: []string{"p"}, Usage: "password (visible to other users: prefer --password-stdin)"},
			&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from standard input"},
			&cli.StringFlag{Name: "authfile", Usage: "credentials file to write", EnvVars: []string{pusher.AuthFileEnv}},
			&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "require HTTPS and verify certificates (false also allows plain HTTP)"},
		},
		Action: loginAction,
	}
}

func loginAction(c *cli.Context) error {
	args, err := positionalArgs(c)
	if err != nil {
		return err
	}
	if len(args) > 1 {
		return usageError(c, "login takes at most one registry")
	}
	user, pass := c.String("username"), c.String("password")
	if c.Bool("password-stdin") {
		if pass != "" {
			return usageError(c, "--password and --password-stdin exclude each other")
		}
		if user == "" {
			return usageError(c, "--password-stdin needs --username")
		}
		p, err := readLine(c.App.Reader)
		if err != nil {
			return fmt.Errorf("reading the password from standard input: %w", err)
		}
		pass = strings.TrimRight(p, "\r\n")
	} else if pass != "" {
		fmt.Fprintln(c.App.ErrWriter, "WARNING! Using --password on the command line is insecure: use --password-stdin.")
	}
	if user == "" {
		fmt.Fprint(c.App.ErrWriter, "Username: ")
		u, err := readLine(c.App.Reader)
		if err != nil {
			return fmt.Errorf("reading the user name: %w", err)
		}
		user = strings.TrimSpace(u)
	}
	if pass == "" {
		p, err := readPassword(c, "Password: ")
		if err != nil {
			return err
		}
		pass = p
	}
	if user == "" || pass == "" {
		return usageError(c, "login needs a user name and a password")
	}
	registry := ""
	if len(args) == 1 {
		registry = args[0]
	}
	_, err = pusher.Login(c.Context, pusher.LoginOptions{
		Registry: registry,
		Username: user,
		Password: pass,
		AuthFile: c.String("authfile"),
		Insecure: !c.Bool("tls-verify"),
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, "Login Succeeded")
	return nil
}

func logoutCommand() *cli.Command {
	return &cli.Command{
		Name:      "logout",
		Usage:     "remove the stored credentials of a registry",
		UsageText: "nook logout [OPTIONS] [REGISTRY]",
		Description: `Examples:
  nook logout localhost:5000
  nook logout                 # docker.io`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "authfile", Usage: "credentials file", EnvVars: []string{pusher.AuthFileEnv}},
		},
		Action: func(c *cli.Context) error {
			args, err := positionalArgs(c)
			if err != nil {
				return err
			}
			if len(args) > 1 {
				return usageError(c, "logout takes at most one registry")
			}
			reg, err := pusher.NormalizeRegistry(strings.Join(args, ""))
			if err != nil {
				return usageError(c, "%v", err)
			}
			if _, err := pusher.Logout(reg, c.String("authfile")); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "Removing login credentials for %s\n", reg)
			return nil
		},
	}
}
