package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"

	"github.com/nook-containers/nook/store"
)

// Pull policies (--pull).
const (
	PullMissing = "missing"
	PullAlways  = "always"
	PullNever   = "never"
)

// Options describe one build.
type Options struct {
	// ContextDir is the build context (an absolute directory).
	ContextDir string
	// Dockerfile is the Dockerfile's content; DockerfileName names it in
	// messages; DockerfilePath (if any) locates <Dockerfile>.dockerignore.
	Dockerfile     []byte
	DockerfileName string
	DockerfilePath string

	Tags      []string // normalized names for the image
	BuildArgs map[string]string
	Target    string
	Labels    map[string]string
	NoCache   bool
	Pull      string // PullMissing (default), PullAlways, PullNever
	// Puller fetches an image into the store (registry pulls); nil means
	// only images already in the store can be used.
	Puller func(ctx context.Context, ref string) error
	// Secrets are RUN --mount=type=secret sources by id.
	Secrets map[string][]byte
	// Network is the default RUN network: "default", "none" or "host".
	Network string
	// Epoch fixes every time in layers and config (SOURCE_DATE_EPOCH,
	// --timestamp) so that builds are reproducible.
	Epoch *time.Time
	// Platform is --platform; only the host's is accepted.
	Platform string

	// Progress receives per-step lines; Live asks for a redrawn view
	// (progress is a terminal). Quiet keeps RUN output back unless a
	// step fails.
	Progress io.Writer
	Live     bool
	Quiet    bool

	// Executor and Runner replace the store executor and the built-in
	// process runner (tests).
	Executor Executor
	Runner   ProcessRunner
	// StateDir holds the cache index and cache mounts; default: a
	// directory beside the store's layers.
	StateDir string
}

// Result is a finished build.
type Result struct {
	Image   *store.Image
	Plan    *Plan
	Steps   int // steps that make layers
	Cached  int // of which were cache hits
	Elapsed time.Duration
	// TargetTop and TargetLayers describe the target stage's filesystem
	// (for --output).
	TargetTop    string
	TargetLayers []store.Layer
	TargetConfig *v1.ConfigFile
}

// StateDir is where builder state lives for a store.
func StateDir(s *store.Store) string { return filepath.Join(s.Root(), "nook-build") }

// stageResult is a built stage.
type stageResult struct {
	top     string
	layers  []store.Layer
	key     string
	history []v1.History
	config  *v1.ConfigFile
	err     error
	done    chan struct{}
}

type build struct {
	ctx      context.Context
	s        *store.Store
	o        Options
	plan     *Plan
	exec     Executor
	cache    *cacheIndex
	hashes   *hashCache
	ctxSrc   *source
	prog     *progress
	results  []*stageResult
	scratch  string
	mu       sync.Mutex
	steps    int
	cached   int
	created  time.Time
	total    int
	stepNums map[*Step]int
}

// Build runs a build and commits the target image into the store.
func Build(ctx context.Context, s *store.Store, o Options) (res *Result, err error) {
	start := time.Now()
	if o.Pull == "" {
		o.Pull = PullMissing
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Platform != "" {
		if _, err := ParsePlatform(o.Platform); err != nil {
			return nil, err
		}
	}
	if o.StateDir == "" {
		o.StateDir = StateDir(s)
	}
	df, err := Parse(o.DockerfileName, o.Dockerfile)
	if err != nil {
		return nil, err
	}
	b := &build{ctx: ctx, s: s, o: o, exec: o.Executor, cache: newCacheIndex(o.StateDir)}
	b.prog = newProgress(o.Progress, o.Live, o.Quiet)
	defer b.prog.close()
	if df.Syntax != "" {
		b.prog.note("syntax directive %q ignored: nook uses its built-in Dockerfile frontend", df.Syntax)
	}
	for _, w := range df.Warnings {
		b.prog.note("warning: %s", w)
	}
	if b.exec == nil {
		runner := o.Runner
		if runner == nil {
			runner = DefaultRunner()
		}
		tmp := filepath.Join(o.StateDir, "tmp")
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return nil, err
		}
		ls := &leases{dir: filepath.Join(o.StateDir, "leases")}
		ls.sweep(s.Storage())
		b.exec = &storeExecutor{s: s, runner: runner, tmp: tmp, leases: ls}
	}
	b.plan, err = MakePlan(df, PlanOptions{
		BuildArgs: o.BuildArgs, Target: o.Target, Labels: o.Labels, Network: o.Network,
		Resolve: b.resolve,
	})
	if err != nil {
		return nil, err
	}
	for _, a := range b.plan.UnusedArgs {
		b.prog.note("warning: build argument %s was not consumed by any ARG", a)
	}
	if o.Epoch != nil {
		b.created = o.Epoch.UTC()
	} else {
		b.created = time.Now().UTC()
	}
	b.hashes = loadHashCache(filepath.Join(o.StateDir, "hashes.json"))
	defer func() {
		if serr := b.hashes.save(); serr != nil && err == nil {
			b.prog.note("warning: saving the file digest cache: %v", serr)
		}
	}()
	ign, err := loadIgnore(o.ContextDir, o.DockerfilePath)
	if err != nil {
		return nil, err
	}
	b.ctxSrc = &source{root: o.ContextDir, ignore: ign, context: true}
	b.scratch, err = os.MkdirTemp("", "nook-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.scratch)
	b.numberSteps()
	// Needed stages run concurrently, each waiting for the stages it reads.
	b.results = make([]*stageResult, len(b.plan.Stages))
	for i := range b.results {
		b.results[i] = &stageResult{done: make(chan struct{})}
	}
	var wg sync.WaitGroup
	for i, st := range b.plan.Stages {
		if !st.Needed {
			close(b.results[i].done)
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := b.results[i]
			r.err = b.runStage(i)
			close(r.done)
		}(i)
	}
	wg.Wait()
	for i, st := range b.plan.Stages {
		if st.Needed && b.results[i].err != nil {
			return nil, b.results[i].err
		}
	}
	t := b.results[b.plan.Target]
	img, err := b.exec.Commit(ctx, &CommitOp{Top: t.top, Layers: t.layers, Config: t.config, Names: o.Tags})
	if err != nil {
		return nil, fmt.Errorf("committing the image: %w", err)
	}
	b.prog.final(img, time.Since(start))
	return &Result{Image: img, Plan: b.plan, Steps: b.steps, Cached: b.cached, Elapsed: time.Since(start),
		TargetTop: t.top, TargetLayers: t.layers, TargetConfig: t.config}, nil
}

// numberSteps gives every step of the needed stages its "N/TOTAL" number.
func (b *build) numberSteps() {
	b.stepNums = map[*Step]int{}
	for _, st := range b.plan.Stages {
		if !st.Needed {
			continue
		}
		b.total++ // FROM
		for _, s := range st.Steps {
			if s.Kind != KindConfig {
				b.total++
			}
		}
	}
	n := 0
	for _, st := range b.plan.Stages {
		if !st.Needed {
			continue
		}
		n++
		for _, s := range st.Steps {
			if s.Kind != KindConfig {
				n++
				b.stepNums[s] = n
			}
		}
	}
}

// resolve finds a base image in the store, pulling it as --pull says.
func (b *build) resolve(ref string) (*BaseImage, error) {
	pull := func() error {
		if b.o.Puller == nil {
			return fmt.Errorf("pulling %s is not available: import or load it first", familiar(ref))
		}
		b.prog.note("pulling %s", familiar(ref))
		return b.o.Puller(b.ctx, ref)
	}
	if b.o.Pull == PullAlways {
		if err := pull(); err != nil {
			return nil, err
		}
	}
	img, err := b.s.Lookup(ref)
	if errors.Is(err, store.ErrNotFound) && b.o.Pull == PullMissing && b.o.Puller != nil {
		if perr := pull(); perr != nil {
			return nil, perr
		}
		img, err = b.s.Lookup(ref)
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) && b.o.Pull == PullNever {
			return nil, fmt.Errorf("not found in the store, and --pull=never")
		}
		return nil, err
	}
	cfg, err := img.OCIConfig()
	if err != nil {
		return nil, err
	}
	if cfg.Architecture != "" && cfg.Architecture != HostPlatform().Architecture {
		return nil, fmt.Errorf("image %s is for %s/%s; nook builds only for the host platform %s", familiar(ref), cfg.OS, cfg.Architecture, HostPlatform())
	}
	return &BaseImage{Ref: ref, ID: img.ID, Config: cfg}, nil
}

func (b *build) label(st *Stage, step *Step) string {
	n := 0
	if step != nil {
		n = b.stepNums[step]
	} else {
		// FROM: the number before the stage's first step.
		n = 1
		for _, s := range b.plan.Stages[:st.Index] {
			if !s.Needed {
				continue
			}
			n++
			for _, x := range s.Steps {
				if x.Kind != KindConfig {
					n++
				}
			}
		}
	}
	name := ""
	if len(b.plan.Stages) > 1 {
		name = st.DisplayName() + " "
	}
	return fmt.Sprintf("[%s%d/%d]", name, n, b.total)
}

func (b *build) wait(i int) (*stageResult, error) {
	r := b.results[i]
	select {
	case <-r.done:
	case <-b.ctx.Done():
		return nil, b.ctx.Err()
	}
	if r.err != nil {
		return nil, fmt.Errorf("stage %s failed", b.plan.Stages[i].DisplayName())
	}
	return r, nil
}

// baseOf returns the starting point of stage i.
func (b *build) baseOf(st *Stage) (top string, layers []store.Layer, key string, hist []v1.History, err error) {
	switch {
	case st.BaseStage >= 0:
		r, err := b.wait(st.BaseStage)
		if err != nil {
			return "", nil, "", nil, err
		}
		return r.top, append([]store.Layer(nil), r.layers...), r.key, append([]v1.History(nil), r.history...), nil
	case st.Base == "scratch":
		return "", nil, chainKey("", "scratch", ""), nil, nil
	default:
		img, err := b.s.Lookup(st.BaseImage.ID)
		if err != nil {
			return "", nil, "", nil, err
		}
		layers, err := b.imageLayers(img)
		if err != nil {
			return "", nil, "", nil, err
		}
		return img.TopLayer, layers, chainKey("", "image", img.ID), append([]v1.History(nil), st.BaseImage.Config.History...), nil
	}
}

// imageLayers lists an image's layers with their diff IDs and sizes.
func (b *build) imageLayers(img *store.Image) ([]store.Layer, error) {
	chain, err := b.s.LayerChain(img.TopLayer)
	if err != nil {
		return nil, err
	}
	out := make([]store.Layer, 0, len(chain))
	for _, l := range chain {
		out = append(out, store.Layer{ID: l.ID, DiffID: l.UncompressedDigest, Size: l.UncompressedSize})
	}
	return out, nil
}

func (b *build) runStage(i int) error {
	st := b.plan.Stages[i]
	from := st.Base
	if st.BaseStage >= 0 {
		from = b.plan.Stages[st.BaseStage].DisplayName()
	}
	fromLabel := b.label(st, nil)
	b.prog.line("%s FROM %s", fromLabel, familiar(from))
	top, layers, key, hist, err := b.baseOf(st)
	b.prog.forget(fromLabel)
	if err != nil {
		return err
	}
	madeLayer := map[int]bool{}
	// Times come from the cache entries, so that a fully cached rebuild
	// gives the same image ID, as docker's does.
	stepTime := map[int]time.Time{}
	for _, step := range st.Steps {
		if step.Kind == KindConfig {
			continue
		}
		if err := b.ctx.Err(); err != nil {
			return err
		}
		l, k, t, err := b.runStep(st, step, top, key)
		if err != nil {
			return locate(b.plan.File, step.Line, fmt.Errorf("%s: %w", step.Text, err))
		}
		key = k
		stepTime[step.Index] = t
		if l != nil {
			top = l.ID
			layers = append(layers, store.Layer{ID: l.ID, DiffID: l.DiffID, Size: l.Size})
			madeLayer[step.Index] = true
		}
	}
	r := b.results[i]
	r.top, r.layers, r.key = top, layers, key
	last := time.Time{}
	if len(hist) > 0 {
		last = hist[len(hist)-1].Created.Time
	}
	if st.BaseImage != nil && st.BaseImage.Config != nil && st.BaseImage.Config.Created.After(last) {
		last = st.BaseImage.Config.Created.Time
	}
	if last.IsZero() {
		// FROM scratch: config lines before the first layer take its time.
		for _, h := range st.History {
			if t, ok := stepTime[h.Step]; ok && h.Step >= 0 {
				last = t
				break
			}
		}
	}
	if last.IsZero() || b.o.Epoch != nil {
		last = b.created
	}
	for _, h := range st.History {
		if t, ok := stepTime[h.Step]; ok && h.Step >= 0 && b.o.Epoch == nil {
			last = t
		}
		e := v1.History{Created: v1.Time{Time: last}, CreatedBy: h.CreatedBy, Comment: "nook build", EmptyLayer: true}
		if h.Step >= 0 && madeLayer[h.Step] {
			e.EmptyLayer = false
		}
		hist = append(hist, e)
	}
	r.history = hist
	cfg := cloneConfig(st.Config)
	cfg.Created = v1.Time{Time: last}
	cfg.History = hist
	cfg.RootFS = v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}}
	for _, l := range layers {
		h, err := v1.NewHash(l.DiffID.String())
		if err != nil {
			return fmt.Errorf("layer %s has no valid diff ID: %w", store.ShortID(l.ID), err)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, h)
	}
	host := HostPlatform()
	cfg.OS, cfg.Architecture, cfg.Variant = host.OS, host.Architecture, host.Variant
	r.config = cfg
	return nil
}

// runStep makes (or finds in the cache) the layer of one step. It returns
// the layer (nil when the step changed nothing) and the step's key.
func (b *build) runStep(st *Stage, step *Step, parent, parentKey string) (*Layer, string, time.Time, error) {
	t0 := time.Now()
	label := b.label(st, step)
	b.prog.line("%s %s", label, step.Text)
	content, copyOp, runOp, err := b.prepareStep(st, step, parent)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	if b.o.Epoch != nil {
		// Times in the layer depend on the epoch.
		content += fmt.Sprintf(",epoch:%d", b.o.Epoch.Unix())
	}
	key := chainKey(parentKey, step.Key, content)
	b.mu.Lock()
	b.steps++
	b.mu.Unlock()
	if !b.o.NoCache {
		if e := b.cache.get(key); e != nil && b.usable(e, parent) {
			b.mu.Lock()
			b.cached++
			b.mu.Unlock()
			b.prog.done(label, "CACHED", 0)
			if e.Layer == "" {
				return nil, key, e.Created, nil
			}
			return &Layer{ID: e.Layer, DiffID: digest.Digest(e.DiffID), Size: e.Size}, key, e.Created, nil
		}
	}
	var l *Layer
	switch {
	case runOp != nil:
		out := b.prog.output(label)
		runOp.Stdout = out
		l, err = b.exec.Run(b.ctx, runOp)
		out.finish(err != nil)
	default:
		l, err = b.exec.Copy(b.ctx, copyOp)
	}
	if err != nil {
		return nil, "", time.Time{}, err
	}
	e := &cacheEntry{Created: time.Now().UTC().Truncate(time.Second)}
	if l != nil {
		e.Layer, e.DiffID, e.Size = l.ID, l.DiffID.String(), l.Size
	}
	if err := b.cache.put(key, e); err != nil {
		b.prog.note("warning: recording the cache entry: %v", err)
	}
	b.prog.done(label, "DONE", time.Since(t0))
	return l, key, e.Created, nil
}

// usable checks that a cached layer still exists and sits on parent.
func (b *build) usable(e *cacheEntry, parent string) bool {
	if e.Layer == "" {
		return true
	}
	l, err := b.s.Storage().Layer(e.Layer)
	if err != nil {
		return false
	}
	return l.Parent == parent && l.UncompressedDigest.String() == e.DiffID
}

// prepareStep computes the content digest of what a step reads and the
// operation that would make its layer.
func (b *build) prepareStep(st *Stage, step *Step, parent string) (string, *CopyOp, *RunOp, error) {
	switch step.Kind {
	case KindWorkdir:
		return "", &CopyOp{Parent: parent, Workdir: step.Workdir, Epoch: b.o.Epoch}, nil, nil
	case KindCopy:
		return b.prepareCopy(step, parent)
	case KindRun:
		return b.prepareRun(st, step, parent)
	}
	return "", nil, nil, fmt.Errorf("unexpected step kind %s", step.Kind)
}

func (b *build) prepareCopy(step *Step, parent string) (string, *CopyOp, *RunOp, error) {
	cs := step.Copy
	op := &CopyOp{Parent: parent, Spec: cs, Epoch: b.o.Epoch}
	var parts []string
	if cs.FromStage >= 0 || cs.FromID != "" {
		if cs.FromStage >= 0 {
			r, err := b.wait(cs.FromStage)
			if err != nil {
				return "", nil, nil, err
			}
			op.FromLayer = r.top
			parts = append(parts, "stage:"+r.key)
		} else {
			img, err := b.s.Lookup(cs.FromID)
			if err != nil {
				return "", nil, nil, err
			}
			op.FromLayer = img.TopLayer
			parts = append(parts, "image:"+img.ID)
		}
	} else {
		sels, wild, err := selectionsFor(b.ctxSrc, cs)
		if err != nil {
			return "", nil, nil, err
		}
		op.Sels, op.Wildcard = sels, wild
	}
	// Heredoc files and downloads become files in the scratch area.
	for k, c := range cs.Contents {
		dir := filepath.Join(b.scratch, fmt.Sprintf("heredoc-%d-%d", step.Line, k))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", nil, nil, err
		}
		name := path.Base(c.Name)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(c.Data), 0o644); err != nil {
			return "", nil, nil, err
		}
		if err := os.Chmod(filepath.Join(dir, name), 0o644); err != nil {
			return "", nil, nil, err
		}
		mt := b.created
		if err := os.Chtimes(filepath.Join(dir, name), mt, mt); err != nil {
			return "", nil, nil, err
		}
		src := &source{root: dir, context: true}
		sel, err := src.selectPath(name)
		if err != nil {
			return "", nil, nil, err
		}
		op.Sels = append(op.Sels, sel)
	}
	for _, u := range cs.Sources {
		if !isURL(u) {
			continue
		}
		sel, err := b.download(u, cs.Checksum)
		if err != nil {
			return "", nil, nil, err
		}
		op.Sels = append(op.Sels, sel)
	}
	d, err := digestSelections(b.hashes, op.Sels)
	if err != nil {
		return "", nil, nil, err
	}
	parts = append(parts, d)
	return strings.Join(parts, ","), op, nil, nil
}

// download fetches an ADD URL into the scratch area and checks its
// checksum. The file gets mode 0600, as docker gives it.
func (b *build) download(u, checksum string) (selection, error) {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, u, nil)
	if err != nil {
		return selection{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return selection{}, fmt.Errorf("downloading %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return selection{}, fmt.Errorf("downloading %s: %s", u, resp.Status)
	}
	name := "__unnamed__"
	if base := path.Base(resp.Request.URL.Path); base != "." && base != "/" && base != "" {
		name = base
	}
	dir, err := os.MkdirTemp(b.scratch, "url-")
	if err != nil {
		return selection{}, err
	}
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return selection{}, err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return selection{}, fmt.Errorf("downloading %s: %w", u, err)
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if checksum != "" && !strings.EqualFold(checksum, got) {
		return selection{}, fmt.Errorf("digest mismatch for %s: the checksum is %s, the download is %s", u, checksum, got)
	}
	mt := time.Unix(0, 0)
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		mt = lm
	}
	if err := os.Chtimes(p, mt, mt); err != nil {
		return selection{}, err
	}
	src := &source{root: dir, context: true}
	sel, err := src.selectPath(name)
	if err != nil {
		return selection{}, err
	}
	for i := range sel.entries {
		sel.entries[i].remote = true
	}
	return sel, nil
}

func (b *build) prepareRun(st *Stage, step *Step, parent string) (string, *CopyOp, *RunOp, error) {
	rs := step.Run
	op := &RunOp{Parent: parent, Spec: rs, Epoch: b.o.Epoch, Hostname: "buildkitsandbox"}
	var parts []string
	for _, m := range rs.Mounts {
		rm := ResolvedMount{Mount: m}
		switch m.Type {
		case "bind":
			switch {
			case m.FromStage >= 0:
				r, err := b.wait(m.FromStage)
				if err != nil {
					return "", nil, nil, err
				}
				rm.FromLayer = r.top
				if r.top == "" {
					rm.HostPath = emptyDir()
				}
				parts = append(parts, "stage:"+r.key)
			case m.FromID != "":
				img, err := b.s.Lookup(m.FromID)
				if err != nil {
					return "", nil, nil, err
				}
				rm.FromLayer = img.TopLayer
				parts = append(parts, "image:"+img.ID)
			default:
				// From the context: its files are part of the key.
				src := m.Source
				if src == "" {
					src = "."
				}
				if rel := path.Clean(src); rel == ".." || strings.HasPrefix(rel, "../") {
					return "", nil, nil, fmt.Errorf("RUN --mount source %s is outside the build context", m.Source)
				}
				sels, err := b.ctxSrc.selectSource(src)
				if err != nil {
					return "", nil, nil, err
				}
				d, err := digestSelections(b.hashes, sels)
				if err != nil {
					return "", nil, nil, err
				}
				parts = append(parts, d)
				rm.HostPath, err = b.ctxSrc.resolve(path.Clean("/" + src))
				if err != nil {
					return "", nil, nil, err
				}
			}
		case "cache":
			dir, err := b.cacheMountDir(m)
			if err != nil {
				return "", nil, nil, err
			}
			rm.HostPath = dir
		case "secret":
			data, ok := b.o.Secrets[m.ID]
			if !ok {
				if m.Required {
					return "", nil, nil, fmt.Errorf("secret %s is required but was not given (--secret id=%s,src=FILE)", m.ID, m.ID)
				}
				continue
			}
			if m.Env != "" {
				// A secret as an environment variable: given to the
				// process only, never in the key or the history.
				op.Spec = withEnv(op.Spec, m.Env, string(data))
			}
			if m.Target != "" {
				p, err := b.secretFile(m.ID, data)
				if err != nil {
					return "", nil, nil, err
				}
				rm.HostPath = p
			}
		}
		op.Mounts = append(op.Mounts, rm)
	}
	return strings.Join(parts, ","), nil, op, nil
}

func withEnv(rs *RunSpec, k, v string) *RunSpec {
	cp := *rs
	cp.ProxyEnv = append(append([]string{}, rs.ProxyEnv...), k+"="+v)
	return &cp
}

// secretFile writes a secret to a private file outside any layer.
func (b *build) secretFile(id string, data []byte) (string, error) {
	dir := filepath.Join(b.scratch, "secrets")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(id))
	p := filepath.Join(dir, hex.EncodeToString(sum[:8]))
	if err := os.WriteFile(p, data, 0o400); err != nil && !errors.Is(err, os.ErrExist) {
		if _, serr := os.Stat(p); serr != nil {
			return "", err
		}
	}
	return p, nil
}

// cacheMountDir is the persistent directory of a RUN --mount=type=cache,
// per user (it lives in the user's store) and id. uid/gid/mode apply when
// it is created.
func (b *build) cacheMountDir(m Mount) (string, error) {
	sum := sha256.Sum256([]byte(m.ID))
	dir := filepath.Join(b.o.StateDir, "cache-mounts", hex.EncodeToString(sum[:16]))
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".new-")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return "", err
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(dir), ".new-"); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(tmp, os.FileMode(m.Mode)); err != nil {
		return "", err
	}
	if err := os.Chown(tmp, m.UID, m.GID); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("creating the cache mount %s: %w", m.ID, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp) // another build made it first
	}
	return dir, nil
}

// ContextFromTar unpacks a tar build context (docker build -) into dir.
// Entries that would land outside dir are refused; owners are not kept.
func ContextFromTar(r io.Reader, dir string) error {
	return untarContext(r, dir)
}

// IsTar reports whether data starts like a tar archive (plain or
// compressed), to tell "nook build - < Dockerfile" from a tar context.
func IsTar(head []byte) bool {
	if len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")) {
		return true
	}
	for _, magic := range [][]byte{{0x1f, 0x8b}, {0x42, 0x5a, 0x68}, {0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00}, {0x28, 0xb5, 0x2f, 0xfd}} {
		if bytes.HasPrefix(head, magic) {
			return true
		}
	}
	return false
}

var _ = storage.ErrLayerUnknown
