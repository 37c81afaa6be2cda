package pusher

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"
)

// progress reports per-layer status as docker does: on a terminal, one
// line per layer redrawn in place with a byte count; otherwise one plain
// line per finished step; nothing when quiet.
type progress struct {
	w        io.Writer // nil: quiet
	terminal bool

	mu      sync.Mutex
	bars    []*bar
	drawn   int // lines drawn by the last redraw (terminal)
	last    time.Time
	stopped bool
}

type bar struct {
	p      *progress
	id     string
	status string
	cur    int64
	total  int64
}

func newProgress(w io.Writer, terminal, quiet bool) *progress {
	if quiet {
		w = nil
	}
	return &progress{w: w, terminal: terminal}
}

// printf writes a plain line (above the bars on a terminal).
func (p *progress) printf(format string, a ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, format+"\n", a...)
	p.drawLocked()
}

// bar adds a line for a blob; id is shown as docker shows it (12 hex).
func (p *progress) bar(id string, total int64) *bar {
	b := &bar{p: p, id: shortDigest(id), total: total, status: "Waiting"}
	if p == nil || p.w == nil {
		return b
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bars = append(p.bars, b)
	if p.terminal {
		p.clearLocked()
		p.drawLocked()
	}
	return b
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 {
		d = d[i+1:]
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// set changes the status; final statuses are printed as plain lines.
func (b *bar) set(status string) {
	p := b.p
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b.status = status
	if p.terminal {
		p.clearLocked()
		p.drawLocked()
		return
	}
	switch status {
	case "Waiting", "Downloading", "Uploading", "Extracting", "Preparing", "Compressing", "Pushing":
		return
	}
	fmt.Fprintf(p.w, "%s: %s\n", b.id, status)
}

// add counts transferred bytes; the terminal view redraws at most every
// 100 ms.
func (b *bar) add(n int) {
	p := b.p
	if p == nil || p.w == nil || !p.terminal {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b.cur += int64(n)
	if time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.clearLocked()
	p.drawLocked()
}

// reset starts the byte count again (a retried upload).
func (b *bar) reset() {
	if b.p == nil {
		return
	}
	b.p.mu.Lock()
	b.cur = 0
	b.p.mu.Unlock()
}

// reader wraps r so that reading it advances the bar.
func (b *bar) reader(r io.Reader) io.Reader {
	if b.p == nil || b.p.w == nil || !b.p.terminal {
		return r
	}
	return &barReader{r: r, b: b}
}

type barReader struct {
	r io.Reader
	b *bar
}

func (r *barReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.b.add(n)
	}
	return n, err
}

func (p *progress) clearLocked() {
	if !p.terminal || p.drawn == 0 {
		return
	}
	// Up to the first bar line, then clear to the end of the screen.
	fmt.Fprintf(p.w, "\x1b[%dA\r\x1b[J", p.drawn)
	p.drawn = 0
}

func (p *progress) drawLocked() {
	if !p.terminal || p.stopped {
		return
	}
	p.last = time.Now()
	var sb strings.Builder
	for _, b := range p.bars {
		sb.WriteString(b.id)
		sb.WriteString(": ")
		sb.WriteString(b.status)
		if (b.status == "Downloading" || b.status == "Uploading" || b.status == "Compressing") && b.total > 0 {
			fmt.Fprintf(&sb, " %s/%s", units.HumanSizeWithPrecision(float64(b.cur), 3), units.HumanSizeWithPrecision(float64(b.total), 3))
		} else if b.status == "Downloading" || b.status == "Uploading" || b.status == "Pushing" {
			fmt.Fprintf(&sb, " %s", units.HumanSizeWithPrecision(float64(b.cur), 3))
		}
		sb.WriteString("\n")
	}
	io.WriteString(p.w, sb.String())
	p.drawn = len(p.bars)
}

// done leaves the final state of every bar on the screen.
func (p *progress) done() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal {
		p.clearLocked()
		p.drawLocked()
		p.stopped = true
		p.drawn = 0
		p.bars = nil
	}
}
