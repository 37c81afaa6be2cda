package runner

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

func TestParseRestartPolicy(t *testing.T) {
	good := map[string]RestartPolicy{
		"":               {Name: "no"},
		"no":             {Name: "no"},
		"always":         {Name: "always"},
		"unless-stopped": {Name: "unless-stopped"},
		"on-failure":     {Name: "on-failure"},
		"on-failure:3":   {Name: "on-failure", MaximumRetryCount: 3},
	}
	for in, want := range good {
		got, err := ParseRestartPolicy(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"sometimes", "always:3", "on-failure:x", "on-failure:-1", "no:1"} {
		if _, err := ParseRestartPolicy(in); err == nil || !strings.Contains(err.Error(), "invalid restart policy") {
			t.Errorf("%q: %v", in, err)
		}
	}
	if s := (RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}).String(); s != "on-failure:2" {
		t.Errorf("String: %q", s)
	}
}

func TestParseLogConfig(t *testing.T) {
	lc, err := ParseLogConfig("", map[string]string{"max-size": "1k", "max-file": "3"})
	if err != nil || lc.Type != "json-file" || lc.MaxSize != 1024 || lc.MaxFile != 3 {
		t.Fatalf("%+v %v", lc, err)
	}
	if lc, err := ParseLogConfig("json-file", nil); err != nil || lc.MaxSize != 0 || lc.MaxFile != 1 {
		t.Fatalf("defaults: %+v %v", lc, err)
	}
	for _, c := range []struct {
		driver string
		opts   map[string]string
		want   string
	}{
		{"syslog", nil, "not available"},
		{"none", map[string]string{"max-size": "1m"}, "takes no --log-opt"},
		{"", map[string]string{"max-file": "2"}, "needs max-size"},
		{"", map[string]string{"max-size": "lots"}, "invalid --log-opt max-size"},
		{"", map[string]string{"max-size": "1m", "max-file": "0"}, "at least 1"},
		{"", map[string]string{"compress": "true"}, "unknown --log-opt"},
	} {
		if _, err := ParseLogConfig(c.driver, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want %q", c.driver, c.opts, err, c.want)
		}
	}
}

func TestEffectiveHealthcheck(t *testing.T) {
	img := &v1.HealthConfig{Test: []string{"CMD", "true"}, Interval: time.Minute, Retries: 5}
	if h := EffectiveHealthcheck(img, &Options{}); h == nil || !reflect.DeepEqual(h.Test, img.Test) || h.Interval != time.Minute || h.Retries != 5 {
		t.Fatalf("image only: %+v", h)
	}
	o := &Options{Health: &Healthcheck{Test: []string{"CMD-SHELL", "wget -q localhost"}, Timeout: time.Second}}
	h := EffectiveHealthcheck(img, o)
	if h == nil || h.Test[0] != "CMD-SHELL" || h.Interval != time.Minute || h.Timeout != time.Second || h.Retries != 5 {
		t.Fatalf("flags over image: %+v", h)
	}
	if h := EffectiveHealthcheck(img, &Options{NoHealthcheck: true}); h != nil {
		t.Fatalf("--no-healthcheck: %+v", h)
	}
	if h := EffectiveHealthcheck(&v1.HealthConfig{Test: []string{"NONE"}}, &Options{}); h != nil {
		t.Fatalf("NONE: %+v", h)
	}
	if h := EffectiveHealthcheck(nil, &Options{Health: &Healthcheck{Interval: time.Second}}); h != nil {
		t.Fatalf("no command: %+v", h)
	}
	argv, err := h.probeCommand()
	if err != nil || !reflect.DeepEqual(argv, []string{"/bin/sh", "-c", "wget -q localhost"}) {
		t.Fatalf("probe command: %v %v", argv, err)
	}
}

func TestNextHealth(t *testing.T) {
	start := time.Unix(1000, 0)
	h := Healthcheck{StartPeriod: 10 * time.Second, Retries: 2}
	at := func(sec int, code int) HealthLog {
		return HealthLog{Start: start.Add(time.Duration(sec) * time.Second), ExitCode: code}
	}
	var s Health
	// Failures in the start period do not count.
	s = nextHealth(s, at(1, 1), h, start)
	s = nextHealth(s, at(2, 1), h, start)
	s = nextHealth(s, at(3, 1), h, start)
	if s.Status != HealthStarting || s.FailingStreak != 0 {
		t.Fatalf("start period: %+v", s)
	}
	s = nextHealth(s, at(4, 0), h, start)
	if s.Status != HealthHealthy {
		t.Fatalf("success: %+v", s)
	}
	// Once healthy, failures count even within the start period.
	s = nextHealth(s, at(5, 1), h, start)
	if s.Status != HealthHealthy || s.FailingStreak != 1 {
		t.Fatalf("one failure: %+v", s)
	}
	s = nextHealth(s, at(6, 1), h, start)
	if s.Status != HealthUnhealthy || s.FailingStreak != 2 {
		t.Fatalf("retries reached: %+v", s)
	}
	s = nextHealth(s, at(7, 0), h, start)
	if s.Status != HealthHealthy || s.FailingStreak != 0 || len(s.Log) != healthLogEntries {
		t.Fatalf("recovered: %+v", s)
	}
	if !s.Log[len(s.Log)-1].Start.Equal(at(7, 0).Start) {
		t.Fatalf("log keeps the latest: %+v", s.Log)
	}
	// After the start period, failures from "starting" count.
	var late Health
	late = nextHealth(late, at(20, 1), h, start)
	late = nextHealth(late, at(21, 1), h, start)
	if late.Status != HealthUnhealthy {
		t.Fatalf("after the start period: %+v", late)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{"TERM": unix.SIGTERM, "sigusr1": unix.SIGUSR1, "9": unix.SIGKILL, "SIGHUP": unix.SIGHUP} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "FOO", "0", "99"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// A json-file log as the monitor writes it, rotated once.
func TestLogs(t *testing.T) {
	dir := t.TempDir()
	c := &Container{ID: "abc", Dir: dir, Options: Options{LogDriver: "json-file", LogOpts: map[string]string{"max-size": "1k", "max-file": "2"}}}
	c.State.Status = StatusExited
	line := func(log, stream string, sec int) string {
		return `{"log":"` + log + `","stream":"` + stream + `","time":"` + time.Unix(int64(1000+sec), 5).UTC().Format(time.RFC3339Nano) + `"}` + "\n"
	}
	os.WriteFile(c.LogPath()+".1", []byte(line(`one\n`, "stdout", 1)+line(`two\n`, "stderr", 2)), 0o600)
	os.WriteFile(c.LogPath(), []byte(line(`three \"q\" \u003c\n`, "stdout", 3)+line(`par`, "stdout", 4)+line(`tial\n`, "stdout", 4)+`{"log":"incompl`), 0o600)
	r := &Runtime{}
	run := func(o LogsOptions) (string, string) {
		var out, errb strings.Builder
		o.Stdout, o.Stderr = &out, &errb
		if err := r.Logs(context.Background(), c, o); err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String()
	}
	if out, errs := run(LogsOptions{Tail: -1}); out != "one\nthree \"q\" <\npartial\n" || errs != "two\n" {
		t.Fatalf("all: %q %q", out, errs)
	}
	if out, errs := run(LogsOptions{Tail: 2}); out != "partial\n" || errs != "" {
		t.Fatalf("tail 2: %q %q", out, errs)
	}
	if out, _ := run(LogsOptions{Tail: 0}); out != "" {
		t.Fatalf("tail 0: %q", out)
	}
	if out, errs := run(LogsOptions{Tail: -1, Since: time.Unix(1002, 0), Until: time.Unix(1004, 0)}); out != "three \"q\" <\n" || errs != "two\n" {
		t.Fatalf("since/until: %q %q", out, errs)
	}
	if out, _ := run(LogsOptions{Tail: 1, Timestamps: true}); out != "1970-01-01T00:16:44.000000005Z tial\n" {
		t.Fatalf("timestamps: %q", out)
	}
	c.Options.LogDriver = "none"
	if err := r.Logs(context.Background(), c, LogsOptions{}); err == nil || !strings.Contains(err.Error(), "does not support reading") {
		t.Fatalf("none: %v", err)
	}
}
