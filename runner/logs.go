package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// LogsOptions are docker logs' flags.
type LogsOptions struct {
	Follow     bool      // -f: go on until the container stops
	Tail       int       // --tail: the last N records; negative: all
	Since      time.Time // --since: records from then on (zero: all)
	Until      time.Time // --until: records before then (zero: all)
	Timestamps bool      // -t: prefix each record with its time
	// Stdout and Stderr receive the container's streams, as docker logs
	// writes them.
	Stdout, Stderr io.Writer
}

// logRecord is one line of a json-file log.
type logRecord struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// timestampFormat is docker's (RFC 3339 with nanoseconds, fixed width).
const timestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// LogsNotSupportedError: the container logs to "none".
var errNoLogs = errors.New(`configured logging driver does not support reading: the container was created with --log-driver none`)

// Logs writes a container's log, the rotated files first.
func (r *Runtime) Logs(ctx context.Context, c *Container, o LogsOptions) error {
	if c.Options.LogDriver == "none" {
		return &UserError{Err: errNoLogs}
	}
	lc, _ := ParseLogConfig(c.Options.LogDriver, c.Options.LogOpts)
	live := c.LogPath()
	var files []string
	for i := lc.MaxFile - 1; i >= 1; i-- {
		files = append(files, live+"."+strconv.Itoa(i))
	}
	files = append(files, live)

	w := &logWriter{o: o}
	var tail []logRecord
	keep := func(rec logRecord) {
		if o.Tail < 0 {
			w.write(rec)
			return
		}
		if o.Tail == 0 {
			return
		}
		tail = append(tail, rec)
		if len(tail) > o.Tail {
			tail = tail[1:]
		}
	}
	var cur *logFile
	for _, p := range files {
		h, err := os.Open(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("reading the log: %w", err)
		}
		lf := &logFile{f: h}
		if err := lf.read(o, keep, p != live); err != nil {
			h.Close()
			return err
		}
		if p == live {
			cur = lf // followed from here
		} else {
			h.Close()
		}
	}
	for _, rec := range tail {
		w.write(rec)
	}
	if w.err != nil || !o.Follow {
		if cur != nil {
			cur.f.Close()
		}
		return w.err
	}
	defer func() {
		if cur != nil {
			cur.f.Close()
		}
	}()
	// Follow: poll the live file, reopening it after a rotation, until the
	// container is stopped for good (restarts are followed).
	emit := func(rec logRecord) { w.write(rec) }
	for {
		if cur != nil {
			if err := cur.read(o, emit, false); err != nil {
				return err
			}
		}
		if w.err != nil {
			return w.err
		}
		if fi, err := os.Stat(live); err == nil && (cur == nil || !sameFile(cur.f, fi)) {
			if cur != nil {
				// Rotated: what is left in the old file first.
				if err := cur.read(o, emit, true); err != nil {
					return err
				}
				cur.f.Close()
			}
			h, err := os.Open(live)
			if err != nil {
				return fmt.Errorf("reading the log: %w", err)
			}
			cur = &logFile{f: h}
			continue
		}
		r.refresh(c)
		if !c.State.Active() && !alive(c.State.Owner, c.State.OwnerStart) {
			if cur != nil {
				if err := cur.read(o, emit, true); err != nil {
					return err
				}
			}
			return w.err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func sameFile(f *os.File, fi os.FileInfo) bool {
	mine, err := f.Stat()
	if err != nil {
		return false
	}
	a, ok1 := mine.Sys().(*syscall.Stat_t)
	b, ok2 := fi.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Ino == b.Ino && a.Dev == b.Dev
}

// logFile reads records from one log file as it grows.
type logFile struct {
	f    *os.File
	rest []byte // an incomplete last line (being written)
}

// read passes every complete record written since the last call that
// the time window admits to fn; with final, an incomplete last line too.
func (lf *logFile) read(o LogsOptions, fn func(logRecord), final bool) error {
	chunk := make([]byte, 64<<10)
	handle := func(line []byte) {
		var rec logRecord
		if json.Unmarshal(line, &rec) != nil {
			return
		}
		if (o.Since.IsZero() || !rec.Time.Before(o.Since)) && (o.Until.IsZero() || rec.Time.Before(o.Until)) {
			fn(rec)
		}
	}
	for {
		n, err := lf.f.Read(chunk)
		data := chunk[:n]
		if len(lf.rest) > 0 {
			data = append(lf.rest, data...)
			lf.rest = nil
		}
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			handle(data[:i+1])
			data = data[i+1:]
		}
		lf.rest = append([]byte(nil), data...)
		if errors.Is(err, io.EOF) || n == 0 {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the log: %w", err)
		}
	}
	if final && len(lf.rest) > 0 {
		handle(lf.rest)
		lf.rest = nil
	}
	return nil
}

// logWriter writes records to the stream they came from.
type logWriter struct {
	o   LogsOptions
	err error
}

func (w *logWriter) write(rec logRecord) {
	if w.err != nil {
		return
	}
	out := w.o.Stdout
	if rec.Stream == "stderr" {
		out = w.o.Stderr
	}
	if out == nil {
		return
	}
	var b []byte
	if w.o.Timestamps {
		b = append(rec.Time.UTC().AppendFormat(b, timestampFormat), ' ')
	}
	b = append(b, rec.Log...)
	_, w.err = out.Write(b)
}
