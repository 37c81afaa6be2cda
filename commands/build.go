package commands

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/nook-containers/nook/builder"
	"github.com/nook-containers/nook/pusher"
	"github.com/nook-containers/nook/store"
)

func buildCommand() *cli.Command {
	return &cli.Command{
		Name:      "build",
		Usage:     "build an image from a Dockerfile",
		UsageText: "nook build [OPTIONS] PATH|-",
		Description: `PATH is the build context: a directory, or - for a tar archive on standard
input (or a Dockerfile, with no context). The Dockerfile is PATH/Dockerfile
unless -f says otherwise (-f - reads it from standard input).

Every step that makes a layer has a cache key (its parent, the instruction
after expansion, the build arguments it sees, the digests of the files it
reads); a rebuild reuses every step whose key is unchanged.

Examples:
  nook build -t app:1 -t app:latest .
  nook build --build-arg V=2 --target test --no-cache --pull=never -q .
  nook build --secret id=npmrc,src=$HOME/.npmrc --secret id=tok,env=TOKEN .
  nook build --output type=local,dest=out/ .
  nook build --network none -f build/Dockerfile .
  tar -C src -c . | nook build -t app -`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "tag", Aliases: []string{"t"}, Usage: "name the image (repeatable)"},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "the Dockerfile (default PATH/Dockerfile; - for standard input)"},
			&cli.StringSliceFlag{Name: "build-arg", Usage: "set a build argument: KEY=VALUE, or KEY to take it from the environment"},
			&cli.StringFlag{Name: "target", Usage: "build this stage"},
			&cli.BoolFlag{Name: "no-cache", Usage: "run every step, using no cached layer"},
			&cli.StringFlag{Name: "pull", Value: "missing", Usage: "base images: always pull, pull when missing, or never pull (always|missing|never)"},
			&cli.StringSliceFlag{Name: "label", Usage: "set a label on the image: KEY=VALUE"},
			&cli.StringFlag{Name: "iidfile", Usage: "write the image ID to this file"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the image ID"},
			&cli.StringSliceFlag{Name: "secret", Usage: "give RUN --mount=type=secret a secret: id=ID,src=FILE or id=ID,env=VAR"},
			&cli.StringSliceFlag{Name: "output", Aliases: []string{"o"}, Usage: "also export the result: type=local,dest=DIR | type=tar,dest=FILE | type=oci,dest=FILE | type=docker,dest=FILE"},
			&cli.StringFlag{Name: "network", Value: "default", Usage: "network of RUN steps: default, none or host"},
			&cli.StringFlag{Name: "timestamp", Usage: "set every time in the image to this Unix time (reproducible builds; default $SOURCE_DATE_EPOCH)"},
			&cli.StringFlag{Name: "platform", Usage: "target platform (only the host's is supported)"},
			&cli.StringFlag{Name: "progress", Value: "auto", Usage: "progress output: auto, plain, tty or quiet"},
			&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "pulling base images: require HTTPS and verify certificates"},
			&cli.StringFlag{Name: "authfile", Usage: "pulling base images: credentials file", EnvVars: []string{pusher.AuthFileEnv}},
			&cli.StringFlag{Name: "creds", Usage: "pulling base images: `USER:PASSWORD` for the registry"},
		},
		Action: buildAction,
	}
}

// buildOptions turns flags into builder options (no store access).
func buildOptions(c *cli.Context) (*builder.Options, func(), error) {
	cleanup := func() {}
	if c.NArg() != 1 {
		return nil, cleanup, usageError(c, "build needs exactly one PATH (a directory, or - for standard input)")
	}
	o := &builder.Options{BuildArgs: map[string]string{}, Labels: map[string]string{}, Secrets: map[string][]byte{}}
	for _, t := range c.StringSlice("tag") {
		named, err := store.NormalizeName(t)
		if err != nil {
			return nil, cleanup, usageError(c, "invalid tag %q: %v", t, err)
		}
		if _, ok := named.(reference.Digested); ok {
			return nil, cleanup, usageError(c, "invalid tag %q: a tag cannot have a digest", t)
		}
		o.Tags = append(o.Tags, named.String())
	}
	for _, a := range c.StringSlice("build-arg") {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			ev, set := os.LookupEnv(k)
			if !set {
				continue // docker: an unset KEY is ignored
			}
			v = ev
		}
		if k == "" {
			return nil, cleanup, usageError(c, "invalid --build-arg %q: use KEY=VALUE", a)
		}
		o.BuildArgs[k] = v
	}
	for _, l := range c.StringSlice("label") {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, cleanup, usageError(c, "invalid --label %q: use KEY=VALUE", l)
		}
		o.Labels[k] = v
	}
	switch p := c.String("pull"); p {
	case "always", "true":
		o.Pull = builder.PullAlways
	case "missing", "", "false":
		o.Pull = builder.PullMissing
	case "never":
		o.Pull = builder.PullNever
	default:
		return nil, cleanup, usageError(c, "invalid --pull %q: use always, missing or never", p)
	}
	switch n := c.String("network"); n {
	case "default", "none", "host":
		o.Network = n
	case "bridge", "private", "":
		o.Network = "default"
	default:
		return nil, cleanup, usageError(c, "invalid --network %q: use default, none or host", n)
	}
	o.Target = c.String("target")
	o.NoCache = c.Bool("no-cache")
	o.Quiet = c.Bool("quiet") || c.String("progress") == "quiet"
	if p := c.String("platform"); p != "" {
		if _, err := builder.ParsePlatform(p); err != nil {
			return nil, cleanup, usageError(c, "%v", err)
		}
		o.Platform = p
	}
	ts := c.String("timestamp")
	if ts == "" {
		ts = os.Getenv("SOURCE_DATE_EPOCH")
		if v, ok := o.BuildArgs["SOURCE_DATE_EPOCH"]; ok {
			ts = v
		}
	}
	if ts != "" {
		n, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || n < 0 {
			return nil, cleanup, usageError(c, "invalid timestamp %q: give seconds since the Unix epoch", ts)
		}
		t := time.Unix(n, 0).UTC()
		o.Epoch = &t
		o.BuildArgs["SOURCE_DATE_EPOCH"] = strconv.FormatInt(n, 10)
	}
	for _, s := range c.StringSlice("secret") {
		id, data, err := parseSecret(s)
		if err != nil {
			return nil, cleanup, usageError(c, "%v", err)
		}
		o.Secrets[id] = data
	}
	// Context and Dockerfile.
	ctxArg := c.Args().First()
	file := c.String("file")
	var stdinUsed bool
	if ctxArg == "-" {
		stdinUsed = true
		if file == "-" {
			return nil, cleanup, usageError(c, "the context and the Dockerfile cannot both come from standard input")
		}
		dir, err := os.MkdirTemp("", "nook-context-")
		if err != nil {
			return nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		br := bufio.NewReaderSize(c.App.Reader, 1<<16)
		head, _ := br.Peek(512)
		if builder.IsTar(head) {
			if err := builder.ContextFromTar(br, dir); err != nil {
				return nil, cleanup, fmt.Errorf("reading the context from standard input: %w", err)
			}
		} else {
			data, err := io.ReadAll(io.LimitReader(br, builder.MaxDockerfileSize+1))
			if err != nil {
				return nil, cleanup, err
			}
			o.Dockerfile, o.DockerfileName = data, "Dockerfile"
		}
		o.ContextDir = dir
	} else {
		abs, err := filepath.Abs(ctxArg)
		if err != nil {
			return nil, cleanup, err
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, cleanup, Exit(ExitError, fmt.Sprintf("unable to prepare the build context: %v", err))
		}
		if !fi.IsDir() {
			return nil, cleanup, usageError(c, "the build context %s is not a directory (use - for a tar archive on standard input)", ctxArg)
		}
		o.ContextDir = abs
	}
	if o.Dockerfile == nil {
		switch {
		case file == "-":
			if stdinUsed {
				return nil, cleanup, usageError(c, "standard input is already the context")
			}
			data, err := io.ReadAll(io.LimitReader(c.App.Reader, builder.MaxDockerfileSize+1))
			if err != nil {
				return nil, cleanup, err
			}
			o.Dockerfile, o.DockerfileName = data, "Dockerfile"
		default:
			p := file
			if p == "" {
				p = filepath.Join(o.ContextDir, "Dockerfile")
				if _, err := os.Stat(p); err != nil {
					if alt := filepath.Join(o.ContextDir, "Containerfile"); fileExists(alt) {
						p = alt
					}
				}
			} else if !filepath.IsAbs(p) {
				if abs, err := filepath.Abs(p); err == nil {
					p = abs
				}
			}
			data, err := os.ReadFile(p)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil, cleanup, Exit(ExitError, fmt.Sprintf("no Dockerfile at %s: give one with -f", p))
				}
				return nil, cleanup, err
			}
			o.Dockerfile, o.DockerfilePath = data, p
			o.DockerfileName = filepath.Base(p)
		}
	}
	return o, cleanup, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// parseSecret reads --secret id=ID,src=FILE | id=ID,env=VAR (also type=).
func parseSecret(s string) (string, []byte, error) {
	var id, src, env, typ string
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return "", nil, fmt.Errorf("invalid --secret %q: use id=ID,src=FILE or id=ID,env=VAR", s)
		}
		switch strings.ToLower(k) {
		case "id":
			id = v
		case "src", "source":
			src = v
		case "env":
			env = v
		case "type":
			typ = v
		default:
			return "", nil, fmt.Errorf("invalid --secret %q: unknown key %q", s, k)
		}
	}
	if typ == "env" && env == "" {
		env, src = src, ""
	}
	if id == "" {
		id = filepath.Base(src)
		if env != "" {
			id = env
		}
	}
	if id == "" {
		return "", nil, fmt.Errorf("invalid --secret %q: no id", s)
	}
	switch {
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", nil, fmt.Errorf("--secret %s: environment variable %s is not set", id, env)
		}
		return id, []byte(v), nil
	case src != "":
		data, err := os.ReadFile(src)
		if err != nil {
			return "", nil, fmt.Errorf("--secret %s: %w", id, err)
		}
		return id, data, nil
	default:
		// docker: id alone means the environment variable of that name.
		if v, ok := os.LookupEnv(id); ok {
			return id, []byte(v), nil
		}
		return "", nil, fmt.Errorf("invalid --secret %q: give src=FILE or env=VAR", s)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func buildAction(c *cli.Context) error {
	o, cleanup, err := buildOptions(c)
	defer cleanup()
	if err != nil {
		return err
	}
	outputs, err := builder.ParseOutputs(c.StringSlice("output"))
	if err != nil {
		return usageError(c, "%v", err)
	}
	o.Progress = c.App.ErrWriter
	po := pusher.Options{Insecure: !c.Bool("tls-verify"), AuthFile: c.String("authfile"), Progress: c.App.ErrWriter, Quiet: o.Quiet}
	if creds := c.String("creds"); creds != "" {
		user, pass, ok := strings.Cut(creds, ":")
		if !ok || user == "" || pass == "" {
			return usageError(c, "--creds needs USER:PASSWORD")
		}
		po.Keychain = pusher.CredentialsKeychain(user, pass)
	}
	switch c.String("progress") {
	case "tty":
		o.Live = true
	case "auto":
		o.Live = isTerminal(c.App.ErrWriter)
	}
	return withStore(c, func(s *store.Store) error {
		o.Puller = func(ctx context.Context, ref string) error {
			_, err := pusher.Pull(ctx, s, ref, po)
			return err
		}
		res, err := builder.Build(c.Context, s, *o)
		if err != nil {
			return err
		}
		id := "sha256:" + res.Image.ID
		if p := c.String("iidfile"); p != "" {
			if err := os.WriteFile(p, []byte(id), 0o644); err != nil {
				return fmt.Errorf("writing --iidfile %s: %w", p, err)
			}
		}
		for _, out := range outputs {
			if err := builder.Export(c.Context, s, res, out, c.App.Writer); err != nil {
				return err
			}
		}
		if o.Quiet {
			fmt.Fprintln(c.App.Writer, id)
		}
		return nil
	})
}

func builderCommand() *cli.Command {
	return &cli.Command{
		Name:  "builder",
		Usage: "manage the build cache",
		Subcommands: []*cli.Command{{
			Name:      "prune",
			Usage:     "remove the build cache",
			UsageText: "nook builder prune [-f]",
			Description: `Removes the cache index, the RUN --mount=type=cache directories and the
cached layers no image uses. Images are kept; the next build runs every step.

Examples:
  nook builder prune -f`,
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
				&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "accepted for docker compatibility: the whole cache is always removed"},
			},
			Action: func(c *cli.Context) error {
				if !c.Bool("force") && !confirm(c, "WARNING! This will remove all build cache.") {
					return nil
				}
				return withStore(c, func(s *store.Store) error {
					rep, err := builder.Prune(s)
					if err != nil {
						return err
					}
					for _, l := range rep.Layers {
						fmt.Fprintln(c.App.Writer, "Deleted build cache layer:", store.ShortID(l))
					}
					fmt.Fprintf(c.App.Writer, "Total reclaimed space: %s (%d cache entries, %d cache mounts)\n",
						humanSize(rep.SpaceReclaimed), rep.Entries, rep.CacheMounts)
					return nil
				})
			},
		}},
	}
}
