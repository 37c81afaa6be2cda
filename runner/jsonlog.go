package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"sync"
	"time"
)

// jsonLog writes a foreground run's output to the container's log in the
// json-file format the monitor writes for detached runs (see
// monitor/monitor.c), so that `nook logs` shows it too.
type jsonLog struct {
	mu      sync.Mutex
	f       *os.File
	path    string
	size    int64
	cfg     LogConfig
	streams []*logStream
}

// maxLogRecord is docker's buffer: a longer line goes out in parts.
const maxLogRecord = 16 << 10

// openJSONLog opens c's log for appending; nil when the container logs
// to "none" or the file cannot be opened (the run goes on without it).
func openJSONLog(c *Container) *jsonLog {
	lc, err := ParseLogConfig(c.Options.LogDriver, c.Options.LogOpts)
	if err != nil || lc.Type == "none" {
		return nil
	}
	l := &jsonLog{path: c.LogPath(), cfg: lc}
	if l.open() != nil {
		return nil
	}
	return l
}

func (l *jsonLog) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	l.f, l.size = f, 0
	if fi, err := f.Stat(); err == nil {
		l.size = fi.Size()
	}
	return nil
}

// stream is a writer for one of the container's streams.
func (l *jsonLog) stream(name string) *logStream {
	s := &logStream{l: l, name: name}
	l.mu.Lock()
	l.streams = append(l.streams, s)
	l.mu.Unlock()
	return s
}

func (l *jsonLog) record(stream string, b []byte) {
	line, err := json.Marshal(logRecord{Log: string(b), Stream: stream, Time: time.Now().UTC()})
	if err != nil {
		return
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return
	}
	if l.cfg.MaxSize > 0 && l.size >= l.cfg.MaxSize {
		l.rotate()
		if l.f == nil {
			return
		}
	}
	n, _ := l.f.Write(line)
	l.size += int64(n)
}

// rotate is the monitor's: LOG.N-1 to LOG.N ... LOG to LOG.1.
func (l *jsonLog) rotate() {
	l.f.Close()
	l.f = nil
	if l.cfg.MaxFile <= 1 {
		_ = os.Truncate(l.path, 0)
	} else {
		for i := l.cfg.MaxFile - 1; i >= 1; i-- {
			from := l.path
			if i > 1 {
				from += "." + strconv.Itoa(i-1)
			}
			if err := os.Rename(from, l.path+"."+strconv.Itoa(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
				break
			}
		}
	}
	_ = l.open()
}

// Close writes what the streams still hold and closes the file.
func (l *jsonLog) Close() {
	if l == nil {
		return
	}
	for _, s := range l.streams {
		s.flush()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// logStream cuts a stream into records: one per line, a line longer than
// maxLogRecord in parts.
type logStream struct {
	l    *jsonLog
	name string
	mu   sync.Mutex
	buf  []byte
}

func (s *logStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	rest := s.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		s.l.record(s.name, rest[:i+1])
		rest = rest[i+1:]
	}
	for len(rest) >= maxLogRecord {
		s.l.record(s.name, rest[:maxLogRecord])
		rest = rest[maxLogRecord:]
	}
	s.buf = append(s.buf[:0], rest...)
	return len(p), nil
}

func (s *logStream) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) > 0 {
		s.l.record(s.name, s.buf)
		s.buf = s.buf[:0]
	}
}
