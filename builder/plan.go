package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/util/system"

	"github.com/nook-containers/nook/imagecfg"
)

// Platform is an OS/architecture pair ("linux/amd64").
type Platform struct {
	OS, Architecture, Variant string
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// HostPlatform is the platform nook runs on: the only one it builds for.
func HostPlatform() Platform {
	p := Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if p.Architecture == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// ParsePlatform reads "os/arch[/variant]" (or "arch") and refuses anything
// but the host's platform, since nook runs RUN steps natively.
func ParsePlatform(s string) (Platform, error) {
	host := HostPlatform()
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "/")
	p := Platform{OS: host.OS}
	switch len(parts) {
	case 1:
		p.Architecture = parts[0]
	case 2, 3:
		p.OS, p.Architecture = parts[0], parts[1]
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
	default:
		return p, fmt.Errorf("invalid platform %q: use os/arch[/variant]", s)
	}
	if p.Architecture == "x86_64" || p.Architecture == "x86-64" {
		p.Architecture = "amd64"
	}
	if p.Architecture == "aarch64" {
		p.Architecture = "arm64"
	}
	if p.OS != host.OS || p.Architecture != host.Architecture || (p.Variant != "" && p.Variant != host.Variant) {
		return p, fmt.Errorf("platform %s is not supported: nook builds only for the host platform %s (it runs RUN steps natively, without emulation)", s, host)
	}
	return host, nil
}

// BaseImage is an image a stage starts from, as the resolver found it.
type BaseImage struct {
	Ref    string // normalized reference, e.g. docker.io/library/busybox:latest
	ID     string // config digest (hex)
	Config *v1.ConfigFile
}

// Resolver finds (pulling if allowed) an image named in FROM or COPY --from.
type Resolver func(ref string) (*BaseImage, error)

// PlanOptions are the inputs of Plan besides the Dockerfile.
type PlanOptions struct {
	BuildArgs map[string]string // --build-arg
	Target    string            // --target; "" = the last stage
	Labels    map[string]string // --label, set on the target image
	Resolve   Resolver          // base images; nil: only scratch and stages
	// Network is the RUN network ("none", "default", "host"); a RUN
	// --network flag overrides it.
	Network string
}

// StepKind says what a step does.
type StepKind string

// Step kinds.
const (
	KindConfig  StepKind = "config"  // changes only the image configuration
	KindRun     StepKind = "run"     // RUN: a process in the rootfs makes a layer
	KindCopy    StepKind = "copy"    // COPY/ADD: files into the rootfs make a layer
	KindWorkdir StepKind = "workdir" // WORKDIR: creates the directory when missing
)

// Plan is what Build will do, stage by stage.
type Plan struct {
	File   string   `json:"file"`
	Target int      `json:"target"`
	Stages []*Stage `json:"stages"`
	// MetaArgs are the global ARG values after build-arg overrides.
	MetaArgs []string `json:"metaArgs,omitempty"`
	// UnusedArgs are --build-arg names no ARG consumed (docker warns).
	UnusedArgs []string `json:"unusedArgs,omitempty"`
	Syntax     string   `json:"syntax,omitempty"`
}

// Stage is one FROM section.
type Stage struct {
	Index int    `json:"index"`
	Name  string `json:"name,omitempty"` // the AS name
	Line  int    `json:"line"`
	// Base is "scratch", "stage N" or the normalized image reference.
	Base      string     `json:"base"`
	BaseStage int        `json:"baseStage"` // -1 unless FROM names an earlier stage
	BaseImage *BaseImage `json:"-"`
	BaseID    string     `json:"baseID,omitempty"`
	Needed    bool       `json:"needed"`
	Deps      []int      `json:"deps,omitempty"` // stages this one reads from
	Steps     []*Step    `json:"steps,omitempty"`
	// Config is the image configuration after the last step.
	Config *v1.ConfigFile `json:"-"`
	// History lists this stage's history entries (not the base's).
	History []HistoryEntry `json:"-"`

	state     *stageState
	triggered bool
}

// DisplayName is the stage's name or "stage-N".
func (s *Stage) DisplayName() string {
	if s.Name != "" {
		return s.Name
	}
	return fmt.Sprintf("stage-%d", s.Index)
}

// HistoryEntry is one history line of a stage: a config step or the
// layer of step Step.
type HistoryEntry struct {
	CreatedBy string
	Step      int // index in Steps of the step that makes a layer; -1 for config
}

// Step is one instruction after expansion.
type Step struct {
	Index   int      `json:"-"`
	Line    int      `json:"line"`
	Kind    StepKind `json:"kind"`
	Text    string   `json:"text"` // expanded instruction, as progress shows it
	OnBuild bool     `json:"onbuild,omitempty"`
	// Key is the digest of everything the step's result depends on except
	// file contents and the parent: Build chains it with those.
	Key     string       `json:"key,omitempty"`
	Run     *RunSpec     `json:"run,omitempty"`
	Copy    *CopySpec    `json:"copy,omitempty"`
	Workdir *WorkdirSpec `json:"workdir,omitempty"`
}

// RunSpec is a RUN step.
type RunSpec struct {
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	User    string   `json:"user,omitempty"`
	Workdir string   `json:"workdir"`
	Network string   `json:"network"`
	Mounts  []Mount  `json:"mounts,omitempty"`
	// Files are heredoc scripts run as files (#! first line); they are
	// mounted read-only under /dev/pipes.
	Files map[string]string `json:"files,omitempty"`
	// ProxyEnv is the predefined proxy build args: given to the process,
	// kept out of the cache key and the history, as docker does.
	ProxyEnv  []string `json:"-"`
	CreatedBy string   `json:"createdBy"`
}

// Mount is a RUN --mount.
type Mount struct {
	Type      string `json:"type"` // bind, cache, tmpfs, secret
	Target    string `json:"target"`
	Source    string `json:"source,omitempty"`
	From      string `json:"from,omitempty"` // "" (context), "stage N", or an image reference
	FromStage int    `json:"fromStage"`
	FromID    string `json:"fromID,omitempty"` // image ID when From is an image
	ReadWrite bool   `json:"rw,omitempty"`
	ID        string `json:"id,omitempty"`      // cache and secret id
	Sharing   string `json:"sharing,omitempty"` // cache: shared, private, locked
	Mode      uint32 `json:"mode,omitempty"`
	UID       int    `json:"uid"`
	GID       int    `json:"gid"`
	Required  bool   `json:"required,omitempty"`
	Env       string `json:"env,omitempty"`  // secret: also as this variable
	Size      int64  `json:"size,omitempty"` // tmpfs size
}

// CopySpec is a COPY or ADD step.
type CopySpec struct {
	Add       bool     `json:"add,omitempty"`
	From      string   `json:"from,omitempty"` // "" (context), "stage N", or an image reference
	FromStage int      `json:"fromStage"`
	FromID    string   `json:"fromID,omitempty"` // image ID when From is an image
	Sources   []string `json:"sources,omitempty"`
	// Contents are heredoc sources: name -> data.
	Contents  []Content `json:"contents,omitempty"`
	Dest      string    `json:"dest"` // absolute; a trailing slash means a directory
	Chown     string    `json:"chown,omitempty"`
	Chmod     string    `json:"chmod,omitempty"`
	Link      bool      `json:"link,omitempty"`
	Parents   bool      `json:"parents,omitempty"`
	Excludes  []string  `json:"excludes,omitempty"`
	Checksum  string    `json:"checksum,omitempty"`
	Unpack    *bool     `json:"unpack,omitempty"`
	Workdir   string    `json:"workdir"`
	CreatedBy string    `json:"createdBy"`
}

// Content is a heredoc file of COPY/ADD.
type Content struct {
	Name string `json:"name"`
	Data string `json:"data"`
}

// WorkdirSpec is a WORKDIR step.
type WorkdirSpec struct {
	Path      string `json:"path"`
	User      string `json:"user,omitempty"`
	CreatedBy string `json:"createdBy"`
}

type planner struct {
	df         *Dockerfile
	opts       PlanOptions
	lex        *shell.Lex
	rawLex     *shell.Lex
	global     *envList
	usedArgs   map[string]bool
	stages     []*Stage
	cmds       [][]instructions.Command // per stage, with ONBUILD triggers first
	onbuild    [][]bool
	byName     map[string]int
	resolved   map[string]*BaseImage
	resolveErr map[string]error
}

// MakePlan expands the Dockerfile and decides what to build. It does no
// I/O besides calling opts.Resolve for base images of needed stages.
func MakePlan(df *Dockerfile, opts PlanOptions) (*Plan, error) {
	p := &planner{
		df:         df,
		opts:       opts,
		lex:        shell.NewLex(df.EscapeToken),
		rawLex:     shell.NewLex('\\'),
		usedArgs:   map[string]bool{},
		byName:     map[string]int{},
		resolved:   map[string]*BaseImage{},
		resolveErr: map[string]error{},
	}
	p.rawLex.SkipProcessQuotes = true
	if p.opts.BuildArgs == nil {
		p.opts.BuildArgs = map[string]string{}
	}
	return p.plan()
}

func (p *planner) errAt(line int, format string, a ...any) error {
	return &Error{File: p.df.Name, Line: line, Err: fmt.Errorf(format, a...)}
}

func (p *planner) plan() (*Plan, error) {
	// Instructions are parsed again from the syntax tree: expansion
	// changes them in place, and a Dockerfile may be planned many times.
	stages, metaArgs, err := parseInstructions(p.df.Name, p.df.AST)
	if err != nil {
		return nil, err
	}
	if err := p.metaArgs(stages, metaArgs); err != nil {
		return nil, err
	}
	out := &Plan{File: p.df.Name, Syntax: p.df.Syntax}
	// Stage bases and names.
	for i, st := range stages {
		s := &Stage{Index: i, Name: strings.ToLower(st.Name), Line: rangeLine(st.Location), BaseStage: -1}
		base, _, err := p.lex.ProcessWord(st.BaseName, p.global)
		if err != nil {
			return nil, p.errAt(s.Line, "expanding the base name %q: %v", st.BaseName, err)
		}
		if base == "" {
			return nil, p.errAt(s.Line, "base name (%s) should not be blank", st.BaseName)
		}
		if st.Platform != "" {
			pl, _, err := p.lex.ProcessWord(st.Platform, p.global)
			if err != nil {
				return nil, p.errAt(s.Line, "expanding --platform %q: %v", st.Platform, err)
			}
			if _, err := ParsePlatform(pl); err != nil {
				return nil, p.errAt(s.Line, "%v", err)
			}
		}
		if idx, ok := p.byName[strings.ToLower(base)]; ok {
			s.BaseStage = idx
			s.Base = fmt.Sprintf("stage %d", idx)
		} else if strings.EqualFold(base, "scratch") {
			s.Base = "scratch"
		} else {
			named, err := reference.ParseNormalizedNamed(base)
			if err != nil {
				return nil, p.errAt(s.Line, "invalid base image name %q: %v", base, err)
			}
			s.Base = reference.TagNameOnly(named).String()
		}
		if s.Name != "" {
			if prev, dup := p.byName[s.Name]; dup {
				return nil, p.errAt(s.Line, "duplicate stage name %q (also on line %d)", st.Name, p.stages[prev].Line)
			}
			if _, err := strconv.Atoi(s.Name); err == nil {
				return nil, p.errAt(s.Line, "invalid stage name %q: a name cannot be a number", st.Name)
			}
			p.byName[s.Name] = i
		}
		p.stages = append(p.stages, s)
		p.cmds = append(p.cmds, st.Commands)
		p.onbuild = append(p.onbuild, make([]bool, len(st.Commands)))
	}
	out.Stages = p.stages
	out.Target = len(p.stages) - 1
	if p.opts.Target != "" {
		idx, ok := p.byName[strings.ToLower(p.opts.Target)]
		if !ok {
			var names []string
			for _, s := range p.stages {
				if s.Name != "" {
					names = append(names, s.Name)
				}
			}
			return nil, &Error{File: p.df.Name, Err: fmt.Errorf("target stage %q could not be found (stages: %s)", p.opts.Target, strings.Join(names, ", "))}
		}
		out.Target = idx
	}
	// Dependencies from COPY --from and RUN --mount=from, then the set
	// of needed stages; ONBUILD triggers of base images may add more.
	for i := range p.stages {
		if err := p.stageDeps(i); err != nil {
			return nil, err
		}
	}
	for {
		p.markNeeded(out.Target)
		added, err := p.resolveBases()
		if err != nil {
			return nil, err
		}
		if !added {
			break
		}
	}
	for i, s := range p.stages {
		if !s.Needed {
			continue
		}
		if err := p.planStage(i); err != nil {
			return nil, err
		}
	}
	t := p.stages[out.Target]
	if len(p.opts.Labels) > 0 {
		if t.Config.Config.Labels == nil {
			t.Config.Config.Labels = map[string]string{}
		}
		for k, v := range p.opts.Labels {
			t.Config.Config.Labels[k] = v
		}
	}
	out.MetaArgs = p.global.slice()
	for k := range p.opts.BuildArgs {
		if !p.usedArgs[k] && !predefinedArg(k) {
			out.UnusedArgs = append(out.UnusedArgs, k)
		}
	}
	sort.Strings(out.UnusedArgs)
	return out, nil
}

// metaArgs computes the global scope: the predefined platform args, then
// the ARGs before the first FROM with build-arg overrides.
func (p *planner) metaArgs(stages []instructions.Stage, metaArgs []instructions.ArgCommand) error {
	host := HostPlatform()
	target := p.opts.Target
	if target == "" && len(stages) > 0 {
		target = stages[len(stages)-1].Name
	}
	if target == "" {
		target = "default"
	}
	p.global = &envList{}
	for _, kv := range [][2]string{
		{"BUILDPLATFORM", host.String()}, {"BUILDOS", host.OS}, {"BUILDOSVERSION", ""},
		{"BUILDARCH", host.Architecture}, {"BUILDVARIANT", host.Variant},
		{"TARGETPLATFORM", host.String()}, {"TARGETOS", host.OS}, {"TARGETOSVERSION", ""},
		{"TARGETARCH", host.Architecture}, {"TARGETVARIANT", host.Variant},
		{"TARGETSTAGE", target},
	} {
		v := kv[1]
		if ov, ok := p.opts.BuildArgs[kv[0]]; ok {
			v = ov
		}
		p.global.set(kv[0], v)
	}
	for _, cmd := range metaArgs {
		for _, kv := range cmd.Args {
			p.usedArgs[kv.Key] = true
			if v, ok := p.opts.BuildArgs[kv.Key]; ok {
				p.global.set(kv.Key, v)
				continue
			}
			if kv.Value == nil {
				continue
			}
			v, _, err := p.lex.ProcessWord(*kv.Value, p.global)
			if err != nil {
				return locate(p.df.Name, rangeLine(cmd.Location()), err)
			}
			p.global.set(kv.Key, v)
		}
	}
	return nil
}

func predefinedArg(k string) bool {
	switch strings.ToUpper(k) {
	case "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY", "SOURCE_DATE_EPOCH":
		return true
	}
	return strings.HasPrefix(k, "BUILDKIT_")
}

// stageRef resolves a --from value: a stage name or index (which must be
// defined before stage i), or an image reference.
func (p *planner) stageRef(i, line int, from string) (int, string, error) {
	if idx, ok := p.byName[strings.ToLower(from)]; ok {
		if idx >= i {
			return 0, "", p.errAt(line, "cannot copy from stage %q: it needs to be defined before the current stage %q", from, p.stages[i].DisplayName())
		}
		return idx, "", nil
	}
	if n, err := strconv.Atoi(from); err == nil {
		if n < 0 || n >= len(p.stages) {
			return 0, "", p.errAt(line, "invalid stage index %d: there are %d stages", n, len(p.stages))
		}
		if n >= i {
			return 0, "", p.errAt(line, "cannot copy from stage %d: it needs to be defined before the current stage %q", n, p.stages[i].DisplayName())
		}
		return n, "", nil
	}
	if strings.Contains(from, "$") {
		return 0, "", p.errAt(line, "variable expansion is not supported for --from: define a stage with FROM using an ARG from the global scope instead")
	}
	named, err := reference.ParseNormalizedNamed(from)
	if err != nil {
		return 0, "", p.errAt(line, "--from=%s names no stage and is not a valid image reference: %v", from, err)
	}
	return -1, reference.TagNameOnly(named).String(), nil
}

func (p *planner) stageDeps(i int) error {
	s := p.stages[i]
	deps := map[int]bool{}
	if s.BaseStage >= 0 {
		deps[s.BaseStage] = true
	}
	for _, c := range p.cmds[i] {
		line := rangeLine(c.Location())
		var froms []string
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "" {
				froms = append(froms, c.From)
			}
		case *instructions.RunCommand:
			for _, m := range instructions.GetMounts(c) {
				if m.From != "" {
					froms = append(froms, m.From)
				}
			}
		}
		for _, f := range froms {
			idx, _, err := p.stageRef(i, line, f)
			if err != nil {
				return err
			}
			if idx >= 0 {
				deps[idx] = true
			}
		}
	}
	s.Deps = s.Deps[:0]
	for d := range deps {
		s.Deps = append(s.Deps, d)
	}
	sort.Ints(s.Deps)
	return nil
}

func (p *planner) markNeeded(i int) {
	if p.stages[i].Needed {
		return
	}
	p.stages[i].Needed = true
	for _, d := range p.stages[i].Deps {
		p.markNeeded(d)
	}
}

func (p *planner) resolve(ref string) (*BaseImage, error) {
	if img, ok := p.resolved[ref]; ok {
		return img, nil
	}
	if err, ok := p.resolveErr[ref]; ok {
		return nil, err
	}
	if p.opts.Resolve == nil {
		err := fmt.Errorf("image %q is not available", ref)
		p.resolveErr[ref] = err
		return nil, err
	}
	img, err := p.opts.Resolve(ref)
	if err != nil {
		p.resolveErr[ref] = err
		return nil, err
	}
	p.resolved[ref] = img
	return img, nil
}

// resolveBases looks up the base images of needed stages and adds their
// ONBUILD triggers. It reports whether triggers added dependencies.
func (p *planner) resolveBases() (bool, error) {
	added := false
	for i, s := range p.stages {
		if s.Needed && s.BaseStage >= 0 && !s.triggered {
			// A stage built on a stage runs that stage's ONBUILD
			// instructions first.
			s.triggered = true
			var trig []string
			for _, c := range p.cmds[s.BaseStage] {
				if ob, ok := c.(*instructions.OnbuildCommand); ok {
					trig = append(trig, ob.Expression)
				}
			}
			if len(trig) > 0 {
				n := len(s.Deps)
				if err := p.addTriggers(i, trig); err != nil {
					return false, err
				}
				if len(s.Deps) != n {
					added = true
				}
			}
			continue
		}
		if !s.Needed || s.BaseImage != nil || s.BaseStage >= 0 || s.Base == "scratch" {
			continue
		}
		img, err := p.resolve(s.Base)
		if err != nil {
			return false, p.errAt(s.Line, "base image %s: %v", familiar(s.Base), err)
		}
		s.BaseImage = img
		s.BaseID = img.ID
		if img.Config != nil && len(img.Config.Config.OnBuild) > 0 {
			n := len(s.Deps)
			if err := p.addTriggers(i, img.Config.Config.OnBuild); err != nil {
				return false, err
			}
			if len(s.Deps) != n {
				added = true
			}
		}
	}
	return added, nil
}

// addTriggers parses ONBUILD triggers and puts them before stage i's own
// instructions, as docker runs them right after FROM.
func (p *planner) addTriggers(i int, triggers []string) error {
	s := p.stages[i]
	var cmds []instructions.Command
	for _, t := range triggers {
		res, err := parser.Parse(strings.NewReader(t))
		if err != nil {
			return p.errAt(s.Line, "ONBUILD trigger %q: %v", t, err)
		}
		if len(res.AST.Children) != 1 {
			return p.errAt(s.Line, "ONBUILD trigger %q: want one instruction", t)
		}
		node := res.AST.Children[0]
		node.StartLine, node.EndLine = s.Line, s.Line
		switch strings.ToUpper(node.Value) {
		case "ONBUILD", "FROM", "MAINTAINER":
			return p.errAt(s.Line, "ONBUILD trigger %q: %s is not allowed as an ONBUILD trigger", t, strings.ToUpper(node.Value))
		}
		c, err := instructions.ParseCommand(node)
		if err != nil {
			return p.errAt(s.Line, "ONBUILD trigger %q: %v", t, err)
		}
		cmds = append(cmds, c)
	}
	ob := make([]bool, len(cmds))
	for k := range ob {
		ob[k] = true
	}
	p.cmds[i] = append(cmds, p.cmds[i]...)
	p.onbuild[i] = append(ob, p.onbuild[i]...)
	return p.stageDeps(i)
}

// stageState is the expansion state of a stage being planned.
type stageState struct {
	cfg       *v1.ConfigFile
	env       *envList // what expansion and RUN see: ENV and ARG values, in order
	buildArgs []kv     // ARGs in scope, for RUN's history line
	cmdSet    bool     // CMD given in this stage (ENTRYPOINT keeps it)
}

type kv struct{ k, v string }

func cloneConfig(c *v1.ConfigFile) *v1.ConfigFile {
	b, _ := json.Marshal(c)
	var out v1.ConfigFile
	_ = json.Unmarshal(b, &out)
	return &out
}

func (p *planner) initState(i int) (*stageState, error) {
	s := p.stages[i]
	st := &stageState{env: &envList{}}
	switch {
	case s.BaseStage >= 0:
		b := p.stages[s.BaseStage]
		st.cfg = cloneConfig(b.Config)
		bs := b.state
		st.env = bs.env.clone()
		st.buildArgs = append(st.buildArgs, bs.buildArgs...)
		// The base stage's ONBUILD triggers were added by resolveBases;
		// they do not carry over.
		st.cfg.Config.OnBuild = nil
		return st, nil
	case s.Base == "scratch":
		st.cfg = imagecfg.NewConfigFile()
		st.cfg.Config.WorkingDir = "/"
	default:
		if s.BaseImage.Config != nil {
			st.cfg = cloneConfig(s.BaseImage.Config)
		} else {
			st.cfg = imagecfg.NewConfigFile()
		}
		// ONBUILD triggers ran (addTriggers); they do not carry over.
		st.cfg.Config.OnBuild = nil
	}
	st.cfg.History = nil
	st.cfg.Created = v1.Time{}
	if _, ok := shell.EnvsFromSlice(st.cfg.Config.Env).Get("PATH"); !ok {
		st.cfg.Config.Env = append(st.cfg.Config.Env, "PATH="+system.DefaultPathEnvUnix)
	}
	for _, e := range st.cfg.Config.Env {
		k, v, _ := strings.Cut(e, "=")
		st.env.set(k, v)
	}
	return st, nil
}

func (p *planner) planStage(i int) error {
	s := p.stages[i]
	st, err := p.initState(i)
	if err != nil {
		return err
	}
	for ci, c := range p.cmds[i] {
		line := rangeLine(c.Location())
		step, err := p.planCommand(i, st, c, line)
		if err != nil {
			return locate(p.df.Name, line, err)
		}
		if step == nil {
			continue
		}
		step.OnBuild = p.onbuild[i][ci]
		step.Index = len(s.Steps)
		if step.Kind != KindConfig {
			step.Key = stepKey(step)
		}
		s.Steps = append(s.Steps, step)
	}
	s.Config = st.cfg
	s.state = st
	return nil
}

func (p *planner) expander(st *stageState) instructions.SingleWordExpander {
	return func(word string) (string, error) {
		r, _, err := p.lex.ProcessWord(word, st.env)
		return r, err
	}
}

func (p *planner) history(st *stageState, s *Stage, createdBy string, step int) {
	s.History = append(s.History, HistoryEntry{CreatedBy: createdBy, Step: step})
}

// planCommand expands one instruction and applies its effect on the
// configuration. It returns the step (nil for instructions with no
// step of their own, such as ONBUILD).
func (p *planner) planCommand(i int, st *stageState, c instructions.Command, line int) (*Step, error) {
	s := p.stages[i]
	_, isArg := c.(*instructions.ArgCommand)
	if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok && !isArg {
		if err := ex.Expand(p.expander(st)); err != nil {
			return nil, err
		}
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		if err := ex.ExpandRaw(func(word string) (string, error) {
			r, _, err := p.rawLex.ProcessWord(word, st.env)
			return r, err
		}); err != nil {
			return nil, err
		}
	}
	step := &Step{Line: line, Kind: KindConfig}
	nextStep := len(s.Steps)
	switch c := c.(type) {
	case *instructions.ArgCommand:
		var parts []string
		for _, a := range c.Args {
			p.usedArgs[a.Key] = true
			bv, hasValue := p.opts.BuildArgs[a.Key]
			if !hasValue && a.Value == nil {
				if v, ok := p.global.Get(a.Key); ok {
					a.Value = &v
				}
			}
			if hasValue {
				a.Value = &bv
			} else if a.Value != nil {
				v, _, err := p.lex.ProcessWord(*a.Value, st.env)
				if err != nil {
					return nil, err
				}
				a.Value = &v
			}
			part := a.Key
			if a.Value != nil {
				st.env.set(a.Key, *a.Value)
				part += "=" + *a.Value
			}
			st.buildArgs = append(st.buildArgs, kv{a.Key, a.ValueString()})
			parts = append(parts, part)
		}
		step.Text = "ARG " + strings.Join(parts, " ")
		p.history(st, s, step.Text, -1)
		return step, nil
	case *instructions.EnvCommand:
		var parts []string
		for _, e := range c.Env {
			st.cfg.Config.Env = imagecfg.SetEnv(st.cfg.Config.Env, e.Key, e.Value)
			st.env.set(e.Key, e.Value)
			parts = append(parts, e.String())
		}
		step.Text = "ENV " + strings.Join(parts, " ")
		p.history(st, s, step.Text, -1)
		return step, nil
	case *instructions.MaintainerCommand:
		st.cfg.Author = c.Maintainer
		step.Text = "MAINTAINER " + c.Maintainer
		p.history(st, s, step.Text, -1)
		return step, nil
	case *instructions.OnbuildCommand:
		st.cfg.Config.OnBuild = append(st.cfg.Config.OnBuild, c.Expression)
		step.Text = "ONBUILD " + c.Expression
		return step, nil
	case *instructions.CmdCommand:
		if err := imagecfg.Apply(&st.cfg.Config, c, nil); err != nil {
			return nil, err
		}
		st.cmdSet = true
		step.Text = fmt.Sprintf("CMD %q", st.cfg.Config.Cmd)
		p.history(st, s, step.Text, -1)
		return step, nil
	case *instructions.EntrypointCommand:
		cmd := st.cfg.Config.Cmd
		if err := imagecfg.Apply(&st.cfg.Config, c, nil); err != nil {
			return nil, err
		}
		if st.cmdSet {
			st.cfg.Config.Cmd = cmd
		}
		step.Text = fmt.Sprintf("ENTRYPOINT %q", st.cfg.Config.Entrypoint)
		p.history(st, s, step.Text, -1)
		return step, nil
	case *instructions.LabelCommand, *instructions.ExposeCommand, *instructions.UserCommand,
		*instructions.VolumeCommand, *instructions.StopSignalCommand, *instructions.ShellCommand,
		*instructions.HealthCheckCommand:
		if sc, ok := c.(*instructions.StopSignalCommand); ok {
			if err := checkSignal(sc.Signal); err != nil {
				return nil, err
			}
		}
		if ec, ok := c.(*instructions.ExposeCommand); ok {
			// EXPOSE has no Expand method: docker splits and expands
			// each word itself.
			var ports []string
			for _, pt := range ec.Ports {
				words, err := p.lex.ProcessWords(pt, st.env)
				if err != nil {
					return nil, err
				}
				ports = append(ports, words...)
			}
			ec.Ports = ports
		}
		// Already expanded: Apply with an expander that changes nothing
		// would still re-process quotes, so give it the command as is
		// through a no-op wrapper.
		if err := applyExpanded(&st.cfg.Config, c); err != nil {
			return nil, err
		}
		step.Text = configText(c, &st.cfg.Config)
		p.history(st, s, step.Text, -1)
		return step, nil
	case *instructions.WorkdirCommand:
		if err := applyExpanded(&st.cfg.Config, c); err != nil {
			return nil, err
		}
		wd := st.cfg.Config.WorkingDir
		step.Kind = KindWorkdir
		step.Text = "WORKDIR " + c.Path
		step.Workdir = &WorkdirSpec{Path: wd, User: st.cfg.Config.User, CreatedBy: "WORKDIR " + wd}
		if wd == "/" {
			step.Kind = KindConfig
			step.Workdir = nil
			p.history(st, s, "WORKDIR /", -1)
			return step, nil
		}
		p.history(st, s, step.Workdir.CreatedBy, nextStep)
		return step, nil
	case *instructions.RunCommand:
		r, err := p.planRun(i, st, c, line)
		if err != nil {
			return nil, err
		}
		step.Kind = KindRun
		step.Run = r
		step.Text = runText(c)
		p.history(st, s, r.CreatedBy, nextStep)
		return step, nil
	case *instructions.CopyCommand:
		cs, err := p.planCopy(i, st, &c.SourcesAndDest, false, line)
		if err != nil {
			return nil, err
		}
		if c.From != "" {
			cs.FromStage, cs.From, err = p.stageRef(i, line, c.From)
			if err != nil {
				return nil, err
			}
			if cs.FromStage >= 0 {
				cs.From = fmt.Sprintf("stage %d", cs.FromStage)
			} else {
				img, err := p.resolve(cs.From)
				if err != nil {
					return nil, fmt.Errorf("COPY --from=%s: no stage has that name, and the image: %w", c.From, err)
				}
				cs.FromID = img.ID
			}
		}
		cs.Chown, cs.Chmod, cs.Link, cs.Parents, cs.Excludes = c.Chown, c.Chmod, c.Link, c.Parents, c.ExcludePatterns
		if err := finishCopy(cs, c.String()); err != nil {
			return nil, err
		}
		step.Kind, step.Copy, step.Text = KindCopy, cs, copyText(c.String())
		p.history(st, s, cs.CreatedBy, nextStep)
		return step, nil
	case *instructions.AddCommand:
		cs, err := p.planCopy(i, st, &c.SourcesAndDest, true, line)
		if err != nil {
			return nil, err
		}
		cs.Chown, cs.Chmod, cs.Link, cs.Excludes, cs.Checksum, cs.Unpack = c.Chown, c.Chmod, c.Link, c.ExcludePatterns, c.Checksum, c.Unpack
		if c.KeepGitDir != nil {
			return nil, errors.New("ADD --keep-git-dir: git sources are not supported")
		}
		if err := finishCopy(cs, c.String()); err != nil {
			return nil, err
		}
		step.Kind, step.Copy, step.Text = KindCopy, cs, copyText(c.String())
		p.history(st, s, cs.CreatedBy, nextStep)
		return step, nil
	default:
		return nil, fmt.Errorf("instruction %s is not supported", strings.ToUpper(c.Name()))
	}
}

// applyExpanded applies an already expanded config instruction with
// imagecfg.Apply, keeping Apply from expanding it a second time (a value
// that expanded to "$X" must stay "$X").
func applyExpanded(cfg *v1.Config, c instructions.Command) error {
	return imagecfg.Apply(cfg, noExpand{c}.unwrap(), nil)
}

type noExpand struct{ c instructions.Command }

// unwrap returns a copy of the command whose Expand is a no-op: the
// words are escaped so that a second expansion returns them unchanged.
func (n noExpand) unwrap() any {
	esc := func(s string) string {
		r := strings.NewReplacer(`\`, `\\`, `$`, `\$`, `'`, `\'`, `"`, `\"`)
		return r.Replace(s)
	}
	switch c := n.c.(type) {
	case *instructions.LabelCommand:
		cp := *c
		cp.Labels = nil
		for _, l := range c.Labels {
			cp.Labels = append(cp.Labels, instructions.KeyValuePair{Key: esc(l.Key), Value: esc(l.Value)})
		}
		return &cp
	case *instructions.UserCommand:
		cp := *c
		cp.User = esc(c.User)
		return &cp
	case *instructions.VolumeCommand:
		cp := *c
		cp.Volumes = nil
		for _, v := range c.Volumes {
			cp.Volumes = append(cp.Volumes, esc(v))
		}
		return &cp
	case *instructions.StopSignalCommand:
		cp := *c
		cp.Signal = esc(c.Signal)
		return &cp
	case *instructions.WorkdirCommand:
		cp := *c
		cp.Path = esc(c.Path)
		return &cp
	}
	return n.c
}

func configText(c instructions.Command, cfg *v1.Config) string {
	switch c := c.(type) {
	case *instructions.LabelCommand:
		var parts []string
		for _, l := range c.Labels {
			parts = append(parts, l.String())
		}
		return "LABEL " + strings.Join(parts, " ")
	case *instructions.ExposeCommand:
		var ports []string
		for _, pt := range c.Ports {
			ports = append(ports, strings.Fields(pt)...)
		}
		return "EXPOSE " + strings.Join(ports, " ")
	case *instructions.UserCommand:
		return "USER " + c.User
	case *instructions.VolumeCommand:
		return fmt.Sprintf("VOLUME %v", c.Volumes)
	case *instructions.StopSignalCommand:
		return "STOPSIGNAL " + c.Signal
	case *instructions.ShellCommand:
		return fmt.Sprintf("SHELL %v", c.Shell)
	case *instructions.HealthCheckCommand:
		if cfg.Healthcheck == nil {
			return "HEALTHCHECK NONE"
		}
		return fmt.Sprintf("HEALTHCHECK %+v", *cfg.Healthcheck)
	}
	return strings.ToUpper(c.Name())
}

func checkSignal(sig string) error {
	s := strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return fmt.Errorf("invalid signal: %s", sig)
		}
		return nil
	}
	if _, ok := signalNames[s]; ok || strings.HasPrefix(s, "RTMIN") || strings.HasPrefix(s, "RTMAX") {
		return nil
	}
	return fmt.Errorf("invalid signal: %s", sig)
}

var signalNames = map[string]bool{
	"ABRT": true, "ALRM": true, "BUS": true, "CHLD": true, "CLD": true, "CONT": true, "FPE": true, "HUP": true,
	"ILL": true, "INT": true, "IO": true, "IOT": true, "KILL": true, "PIPE": true, "POLL": true, "PROF": true,
	"PWR": true, "QUIT": true, "SEGV": true, "STKFLT": true, "STOP": true, "SYS": true, "TERM": true, "TRAP": true,
	"TSTP": true, "TTIN": true, "TTOU": true, "URG": true, "USR1": true, "USR2": true, "VTALRM": true,
	"WINCH": true, "XCPU": true, "XFSZ": true,
}

func runText(c *instructions.RunCommand) string {
	t := c.String()
	if len(c.Files) > 0 {
		t += " (" + summarizeHeredoc(c.Files[0].Data) + ")"
	}
	return t
}

func copyText(s string) string { return s }

func summarizeHeredoc(doc string) string {
	doc = strings.TrimSpace(doc)
	lines := strings.Split(strings.ReplaceAll(doc, "\r\n", "\n"), "\n")
	summary := lines[0]
	if len(lines) > 1 {
		summary += "..."
	}
	return summary
}

func withShell(cfg *v1.Config, args []string) []string {
	sh := cfg.Shell
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	return append(append([]string{}, sh...), strings.Join(args, " "))
}

func (p *planner) planRun(i int, st *stageState, c *instructions.RunCommand, line int) (*RunSpec, error) {
	r := &RunSpec{
		Env:     st.env.slice(),
		User:    st.cfg.Config.User,
		Workdir: st.cfg.Config.WorkingDir,
		Network: p.opts.Network,
	}
	if r.Workdir == "" {
		r.Workdir = "/"
	}
	if r.Network == "" {
		r.Network = "default"
	}
	for _, f := range c.FlagsUsed {
		if f == "network" {
			r.Network = string(instructions.GetNetwork(c))
		}
	}
	if sec := instructions.GetSecurity(c); sec != "" && sec != "sandbox" {
		return nil, fmt.Errorf("RUN --security=%s is not supported: rootless builds run sandboxed", sec)
	}
	args := c.CmdLine
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, fmt.Errorf("invalid heredoc RUN command: %v", args)
		}
		if hd := parser.MustParseHeredoc(args[0]); hd != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				r.Files = map[string]string{c.Files[0].Name: data}
				args = []string{path.Join("/dev/pipes", c.Files[0].Name)}
			} else {
				args = []string{data}
			}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range c.Files {
				b.WriteByte('\n')
				b.WriteString(f.Data)
				b.WriteString(f.Name)
			}
			args = []string{b.String()}
		}
	}
	if c.PrependShell && r.Files == nil {
		args = withShell(&st.cfg.Config, args)
	}
	r.Args = args
	for _, m := range instructions.GetMounts(c) {
		mm := Mount{Type: string(m.Type), Target: m.Target, Source: m.Source, FromStage: -1,
			ReadWrite: !m.ReadOnly, ID: m.CacheID, Sharing: string(m.CacheSharing), Required: m.Required, Size: m.SizeLimit}
		if m.Mode != nil {
			mm.Mode = uint32(*m.Mode)
		}
		if m.UID != nil {
			mm.UID = int(*m.UID)
		}
		if m.GID != nil {
			mm.GID = int(*m.GID)
		}
		if m.Env != nil {
			mm.Env = *m.Env
		}
		switch m.Type {
		case instructions.MountTypeSSH:
			return nil, errors.New("RUN --mount=type=ssh is not supported")
		case instructions.MountTypeSecret:
			if mm.ID == "" {
				mm.ID = path.Base(m.Target)
			}
			if mm.Target == "" && mm.Env == "" {
				mm.Target = "/run/secrets/" + mm.ID
			}
			if mm.Target != "" && !path.IsAbs(mm.Target) {
				mm.Target = path.Join(r.Workdir, mm.Target)
			}
			mm.ReadWrite = false
		case instructions.MountTypeCache:
			if mm.Sharing == "" {
				mm.Sharing = "shared"
			}
			if mm.Mode == 0 {
				mm.Mode = 0o755
			}
		}
		if mm.Target == "" && m.Type != instructions.MountTypeSecret {
			return nil, fmt.Errorf("RUN --mount=type=%s needs a target", m.Type)
		}
		if mm.Target != "" && !path.IsAbs(mm.Target) {
			mm.Target = path.Join(r.Workdir, mm.Target)
		}
		if m.Type == instructions.MountTypeCache && mm.ID == "" {
			mm.ID = mm.Target
		}
		if m.From != "" {
			idx, ref, err := p.stageRef(i, line, m.From)
			if err != nil {
				return nil, err
			}
			mm.FromStage, mm.From = idx, ref
			if idx >= 0 {
				mm.From = fmt.Sprintf("stage %d", idx)
			} else {
				img, err := p.resolve(ref)
				if err != nil {
					return nil, fmt.Errorf("RUN --mount from=%s: no stage has that name, and the image: %w", m.From, err)
				}
				mm.FromID = img.ID
			}
		}
		r.Mounts = append(r.Mounts, mm)
	}
	// Proxy args are given to the process but kept out of the cache key
	// and the history, as docker does.
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
		"http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"} {
		if v, ok := p.opts.BuildArgs[k]; ok {
			p.usedArgs[k] = true
			if _, declared := st.env.Get(k); !declared {
				r.ProxyEnv = append(r.ProxyEnv, k+"="+v)
			}
		}
	}
	// History: "RUN |N K=V ... cmd", the ARGs in scope, as docker writes it.
	var argParts []string
	seen := map[string]int{}
	for _, a := range st.buildArgs {
		v, ok := st.env.Get(a.k)
		if !ok {
			v = a.v
		}
		if idx, ok := seen[a.k]; ok {
			argParts[idx] = a.k + "=" + v
			continue
		}
		seen[a.k] = len(argParts)
		argParts = append(argParts, a.k+"="+v)
	}
	hist := args
	if len(argParts) > 0 {
		hist = append(append([]string{fmt.Sprintf("|%d", len(argParts))}, argParts...), args...)
	}
	r.CreatedBy = "RUN " + strings.Join(hist, " ")
	return r, nil
}

func (p *planner) planCopy(i int, st *stageState, sd *instructions.SourcesAndDest, add bool, line int) (*CopySpec, error) {
	wd := st.cfg.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}
	dest := sd.DestPath
	if dest == "." || dest == "" {
		dest = "./"
	}
	dest, err := system.NormalizePath(wd, dest, "linux", true)
	if err != nil {
		return nil, err
	}
	cs := &CopySpec{Add: add, FromStage: -1, Dest: dest, Workdir: wd}
	cs.Sources = append(cs.Sources, sd.SourcePaths...)
	for _, c := range sd.SourceContents {
		cs.Contents = append(cs.Contents, Content{Name: c.Path, Data: c.Data})
	}
	return cs, nil
}

// finishCopy checks flag combinations as docker does and writes the
// history line.
func finishCopy(cs *CopySpec, orig string) error {
	if cs.Chmod != "" {
		if v, err := strconv.ParseUint(cs.Chmod, 8, 32); err != nil || v > 0o7777 {
			return fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", cs.Chmod)
		}
	}
	if cs.Link && cs.Chown != "" && chownByName(cs.Chown) {
		return fmt.Errorf("--chown=%s: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead", cs.Chown)
	}
	nsrc := len(cs.Sources) + len(cs.Contents)
	if cs.Checksum != "" {
		if !cs.Add {
			return errors.New("checksum can't be specified for COPY")
		}
		if len(cs.Sources) != 1 {
			return errors.New("checksum can't be specified for multiple sources")
		}
		if !isURL(cs.Sources[0]) {
			return errors.New("checksum requires HTTP(S) sources")
		}
	}
	for _, src := range cs.Sources {
		if isURL(src) {
			if !cs.Add {
				return errors.New("source can't be a URL for COPY")
			}
			if cs.From != "" {
				return errors.New("a URL source cannot be used with --from")
			}
			continue
		}
		if cs.From == "" && cs.FromStage < 0 {
			if rel := path.Clean(src); rel == ".." || strings.HasPrefix(rel, "../") {
				return fmt.Errorf("forbidden path outside the build context: %s (%s)", src, orig)
			}
		}
	}
	if nsrc > 1 && !strings.HasSuffix(cs.Dest, "/") {
		return fmt.Errorf("when using %s with more than one source file, the destination must be a directory and end with a /", map[bool]string{true: "ADD", false: "COPY"}[cs.Add])
	}
	var b strings.Builder
	if cs.Add {
		b.WriteString("ADD")
	} else {
		b.WriteString("COPY")
	}
	if cs.Parents {
		b.WriteString(" --parents")
	}
	if cs.Chown != "" {
		b.WriteString(" --chown=" + cs.Chown)
	}
	if cs.Chmod != "" {
		b.WriteString(" --chmod=" + cs.Chmod)
	}
	for _, s := range cs.Sources {
		b.WriteString(" " + s)
	}
	for _, c := range cs.Contents {
		b.WriteString(" <<" + c.Name)
	}
	b.WriteString(" " + cs.Dest)
	cs.CreatedBy = b.String()
	return nil
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

func chownByName(chown string) bool {
	u, g, _ := strings.Cut(chown, ":")
	isNum := func(s string) bool {
		_, err := strconv.ParseUint(s, 10, 32)
		return err == nil
	}
	return (u != "" && !isNum(u)) || (g != "" && !isNum(g))
}

// stepKey digests what a step's result depends on, besides its parent
// and the contents of the files it reads.
func stepKey(s *Step) string {
	type keyed struct {
		Kind    StepKind
		Run     *RunSpec     `json:",omitempty"`
		Copy    *CopySpec    `json:",omitempty"`
		Workdir *WorkdirSpec `json:",omitempty"`
	}
	k := keyed{Kind: s.Kind, Workdir: s.Workdir}
	if s.Run != nil {
		r := *s.Run
		r.CreatedBy = "" // the history line repeats Args and Env
		k.Run = &r
	}
	if s.Copy != nil {
		c := *s.Copy
		c.CreatedBy = ""
		k.Copy = &c
	}
	b, _ := json.Marshal(k)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func familiar(ref string) string {
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		return reference.FamiliarString(named)
	}
	return ref
}

// envList is an ordered environment: later values replace earlier ones
// in place, as buildkit's state keeps it. It implements shell.EnvGetter.
type envList struct {
	keys []string
	vals map[string]string
}

func (e *envList) set(k, v string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

// Get implements shell.EnvGetter.
func (e *envList) Get(k string) (string, bool) {
	v, ok := e.vals[k]
	return v, ok
}

// Keys implements shell.EnvGetter.
func (e *envList) Keys() []string { return append([]string(nil), e.keys...) }

func (e *envList) slice() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

func (e *envList) clone() *envList {
	c := &envList{keys: append([]string(nil), e.keys...), vals: map[string]string{}}
	for k, v := range e.vals {
		c.vals[k] = v
	}
	return c
}
