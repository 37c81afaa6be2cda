// Package imagecfg applies Dockerfile instructions that only change an
// image's configuration (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER,
// VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK, SHELL) to a docker-compatible
// image config. It serves `import --change`, `commit --change` and the
// builder. Parsing is buildkit's; nothing here parses Dockerfile syntax.
package imagecfg

import (
	"errors"
	"fmt"
	"path"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// DefaultPath is the PATH docker gives a container whose image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ChangeInstructions are what `import --change` and `commit --change` accept (docker's list).
var ChangeInstructions = []string{"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}

// ParseChange parses one --change value ("CMD [\"sh\"]", "ENV A=b").
func ParseChange(change string) (any, error) {
	res, err := parser.Parse(strings.NewReader(change))
	if err != nil {
		return nil, fmt.Errorf("parsing --change %q: %w", change, err)
	}
	if len(res.AST.Children) != 1 {
		return nil, fmt.Errorf("--change %q: want exactly one instruction", change)
	}
	node := res.AST.Children[0]
	ok := false
	for _, n := range ChangeInstructions {
		if strings.EqualFold(node.Value, n) {
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("--change %q: %s cannot be used here; allowed: %s", change, strings.ToUpper(node.Value), strings.Join(ChangeInstructions, ", "))
	}
	cmd, err := instructions.ParseInstruction(node)
	if err != nil {
		return nil, fmt.Errorf("--change %q: %w", change, err)
	}
	return cmd, nil
}

// ApplyChanges parses and applies each --change value in order.
func ApplyChanges(cfg *v1.Config, changes []string) error {
	for _, ch := range changes {
		cmd, err := ParseChange(ch)
		if err != nil {
			return err
		}
		if err := Apply(cfg, cmd, nil); err != nil {
			return fmt.Errorf("--change %q: %w", ch, err)
		}
	}
	return nil
}

// Expander expands $VAR words with the given environment, as docker does.
func Expander(env []string) instructions.SingleWordExpander {
	lex := shell.NewLex('\\')
	return func(word string) (string, error) {
		r, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(env))
		return r, err
	}
}

// SetEnv sets k=v in an env list, replacing an earlier value.
func SetEnv(env []string, k, v string) []string {
	for i, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// Apply applies one parsed instruction to cfg. extraEnv (build args) is
// visible to expansion but not stored. Instructions that do not change the
// config (RUN, COPY, ...) are an error.
func Apply(cfg *v1.Config, cmd any, extraEnv []string) error {
	expandEnv := append(append([]string{}, extraEnv...), cfg.Env...)
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(Expander(expandEnv)); err != nil {
			return err
		}
	}
	shellCmd := func(c instructions.ShellDependantCmdLine) []string {
		if !c.PrependShell {
			return append([]string{}, c.CmdLine...)
		}
		sh := cfg.Shell
		if len(sh) == 0 {
			sh = []string{"/bin/sh", "-c"}
		}
		return append(append([]string{}, sh...), strings.Join(c.CmdLine, " "))
	}
	switch c := cmd.(type) {
	case *instructions.CmdCommand:
		cfg.Cmd = shellCmd(c.ShellDependantCmdLine)
		cfg.ArgsEscaped = false
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = shellCmd(c.ShellDependantCmdLine)
		if len(c.CmdLine) == 0 {
			cfg.Entrypoint = nil
		}
		// docker: ENTRYPOINT resets a CMD inherited from the base image;
		// the builder restores a CMD set in the same stage.
		cfg.Cmd = nil
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = SetEnv(cfg.Env, kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range c.Ports {
			for _, word := range strings.Fields(p) {
				ports, err := ExpandPortSpec(word)
				if err != nil {
					return err
				}
				for _, pp := range ports {
					cfg.ExposedPorts[pp] = struct{}{}
				}
			}
		}
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v = strings.TrimSpace(v); v == "" {
				return errors.New("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.WorkdirCommand:
		p := c.Path
		if !path.IsAbs(p) {
			base := cfg.WorkingDir
			if base == "" {
				base = "/"
			}
			p = path.Join(base, p)
		}
		cfg.WorkingDir = path.Clean(p)
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.ShellCommand:
		cfg.Shell = append([]string{}, c.Shell...)
	case *instructions.HealthCheckCommand:
		if c.Health == nil {
			cfg.Healthcheck = nil
			break
		}
		cfg.Healthcheck = &v1.HealthConfig{
			Test:        c.Health.Test,
			Interval:    c.Health.Interval,
			Timeout:     c.Health.Timeout,
			StartPeriod: c.Health.StartPeriod,
			Retries:     c.Health.Retries,
		}
	default:
		return fmt.Errorf("instruction %T does not change the image configuration", cmd)
	}
	return nil
}

// ExpandPortSpec turns "80", "80/udp" or "8000-8002/tcp" into "80/tcp" forms.
func ExpandPortSpec(spec string) ([]string, error) {
	portPart, proto, _ := strings.Cut(spec, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("invalid protocol %q in port %q: use tcp, udp or sctp", proto, spec)
	}
	lo, hi, isRange := strings.Cut(portPart, "-")
	var a, b int
	if _, err := fmt.Sscanf(lo, "%d", &a); err != nil || a < 1 || a > 65535 {
		return nil, fmt.Errorf("invalid port %q: ports are 1-65535", spec)
	}
	b = a
	if isRange {
		if _, err := fmt.Sscanf(hi, "%d", &b); err != nil || b < a || b > 65535 {
			return nil, fmt.Errorf("invalid port range %q", spec)
		}
	}
	var out []string
	for p := a; p <= b; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}

// NewConfigFile is the config of an image with no parent, for this host.
func NewConfigFile() *v1.ConfigFile {
	return &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           runtime.GOOS,
		RootFS:       v1.RootFS{Type: "layers"},
	}
}
