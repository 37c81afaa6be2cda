package builder

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nook-containers/nook/store"
)

// progress prints per-step lines: "[2/5] COPY a /a", then "[2/5] CACHED"
// or "[2/5] DONE 0.3s", with RUN output in between. On a terminal (live)
// a status line at the bottom shows the running steps and their times.
// Quiet keeps everything back except the output of a failing step.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	live    bool
	quiet   bool
	running map[string]time.Time
	status  bool // a status line is on screen
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newProgress(w io.Writer, live, quiet bool) *progress {
	p := &progress{w: w, live: live && !quiet, quiet: quiet, running: map[string]time.Time{}, stop: make(chan struct{})}
	if p.live {
		p.wg.Add(1)
		go p.ticker()
	}
	return p
}

func (p *progress) ticker() {
	defer p.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.drawStatus()
			p.mu.Unlock()
		}
	}
}

func (p *progress) clearStatus() {
	if p.status {
		fmt.Fprint(p.w, "\r\x1b[2K")
		p.status = false
	}
}

func (p *progress) drawStatus() {
	if len(p.running) == 0 {
		p.clearStatus()
		return
	}
	var parts []string
	for label, t0 := range p.running {
		parts = append(parts, fmt.Sprintf("%s %.1fs", label, time.Since(t0).Seconds()))
	}
	sort.Strings(parts)
	fmt.Fprintf(p.w, "\r\x1b[2K => running %s", strings.Join(parts, ", "))
	p.status = true
}

func (p *progress) close() {
	if p.live {
		close(p.stop)
		p.wg.Wait()
		p.mu.Lock()
		p.clearStatus()
		p.mu.Unlock()
	}
}

func (p *progress) println(s string) {
	p.clearStatus()
	fmt.Fprintln(p.w, s)
	if p.live {
		p.drawStatus()
	}
}

// line starts a step.
func (p *progress) line(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := fmt.Sprintf(format, a...)
	if label, _, ok := strings.Cut(s, " "); ok && strings.HasPrefix(label, "[") {
		p.running[label] = time.Now()
	}
	if !p.quiet {
		p.println(s)
	}
}

// note prints a remark (warnings, pulls), also when quiet.
func (p *progress) note(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.println(fmt.Sprintf(format, a...))
}

// done ends a step.
func (p *progress) done(label, what string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, label)
	if p.quiet {
		return
	}
	if what == "CACHED" {
		p.println(label + " CACHED")
		return
	}
	p.println(fmt.Sprintf("%s %s %.2fs", label, what, d.Seconds()))
}

// forget ends a step that prints no end line (FROM).
func (p *progress) forget(label string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, label)
}

// stepOutput receives a RUN step's output.
type stepOutput struct {
	p     *progress
	label string
	buf   bytes.Buffer // quiet: kept until the step ends
	part  []byte       // an unfinished line
}

func (p *progress) output(label string) *stepOutput {
	return &stepOutput{p: p, label: label}
}

func (o *stepOutput) Write(b []byte) (int, error) {
	o.p.mu.Lock()
	defer o.p.mu.Unlock()
	if o.p.quiet {
		if o.buf.Len() < 1<<20 {
			o.buf.Write(b)
		}
		return len(b), nil
	}
	o.part = append(o.part, b...)
	for {
		i := bytes.IndexByte(o.part, '\n')
		if i < 0 {
			break
		}
		o.p.println(o.label + " | " + string(o.part[:i]))
		o.part = o.part[i+1:]
	}
	if len(o.part) > 64<<10 {
		o.p.println(o.label + " | " + string(o.part))
		o.part = nil
	}
	return len(b), nil
}

// finish flushes what is left; when the step failed in quiet mode, its
// output is shown after all.
func (o *stepOutput) finish(failed bool) {
	o.p.mu.Lock()
	defer o.p.mu.Unlock()
	if len(o.part) > 0 {
		o.p.println(o.label + " | " + string(o.part))
		o.part = nil
	}
	if failed {
		delete(o.p.running, o.label)
	}
	if failed && o.p.quiet && o.buf.Len() > 0 {
		for _, l := range strings.Split(strings.TrimRight(o.buf.String(), "\n"), "\n") {
			o.p.println(o.label + " | " + l)
		}
	}
}

func (p *progress) final(img *store.Image, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet {
		return
	}
	p.println(fmt.Sprintf("writing image sha256:%s %.2fs", img.ID, d.Seconds()))
	for _, n := range img.Names {
		p.println("naming to " + n)
	}
}
