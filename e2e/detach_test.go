package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runD starts a detached container and returns its ID.
func (e *Env) runD(args ...string) string {
	e.t.Helper()
	out := strings.TrimSpace(e.Must(append([]string{"run", "-d"}, args...)...))
	if len(out) != 64 {
		e.t.Fatalf("run -d printed %q, want a container ID", out)
	}
	return out
}

// inspectF applies a --format template to a container.
func (e *Env) inspectF(name, format string) string {
	e.t.Helper()
	return strings.TrimSpace(e.Must("inspect", "--format", format, name))
}

// eventually polls cond until it holds, at most d.
func (e *Env) eventually(d time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("after %s: %s\nps -a:\n%s", d, what, e.Run("ps", "-a", "--no-trunc").Stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStatus waits until ps shows the container with the status (the
// State column: running, exited, restarting...).
func (e *Env) waitStatus(name, want string, d time.Duration) {
	e.t.Helper()
	var got string
	e.eventually(d, fmt.Sprintf("%s is %q, want %q", name, got, want), func() bool {
		got = e.inspectF(name, "{{.State.Status}}")
		return got == want
	})
}

// waitReady waits until a container has logged "ready".
func (e *Env) waitReady(name string) {
	e.t.Helper()
	e.eventually(10*time.Second, name+" never said ready", func() bool {
		return strings.Contains(e.Must("logs", name), "ready\n")
	})
}

// ctrDir is the directory with a container's records.
func (e *Env) ctrDir(name string) string {
	e.t.Helper()
	return filepath.Dir(e.inspectF(name, "{{.HostnamePath}}"))
}

// monitorPID reads the pid of a detached container's monitor.
func (e *Env) monitorPID(name string) int {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.ctrDir(name), "monitor.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	var m struct{ Monitor int }
	if err := json.Unmarshal(b, &m); err != nil || m.Monitor <= 0 {
		e.t.Fatalf("monitor.json %s: %v", b, err)
	}
	return m.Monitor
}

// processesWith lists the host processes whose command line contains s.
func processesWith(s string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, d := range ents {
		if _, err := strconv.Atoi(d.Name()); err != nil || d.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		if st, err := os.ReadFile("/proc/" + d.Name() + "/stat"); err == nil {
			f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
			if len(f) > 0 && f[0] == "Z" {
				continue // exited, not yet reaped by its new parent
			}
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, s) {
			out = append(out, d.Name()+": "+cmd)
		}
	}
	return out
}

// assertReleased checks that nothing of the containers ids is left: no
// records, mounts, monitors or container processes (marked by token in
// their command line), network leases or published ports.
func (e *Env) assertReleased(token string, ids []string, ports []int) {
	e.t.Helper()
	e.assertNoContainers()
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left = append(processesWith(token), processesWith("dir="+e.Root)...)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("processes left: %q", left)
		}
	}
	leases := e.Must("network", "inspect", "nook", "--format", `{{range $id, $e := .Containers}}{{$id}} {{end}}`)
	for _, id := range ids {
		if strings.Contains(leases, id) {
			e.t.Fatalf("the network lease of %.12s was left", id)
		}
	}
	for _, p := range ports {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 2*time.Second)
		if err == nil {
			c.Close()
			e.t.Fatalf("port %d still accepts connections", p)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			e.t.Fatalf("port %d: %v (want connection refused: a forwarding rule was left)", p, err)
		}
	}
}

func TestDetachLogs(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	id := e.runD("--name", "talk", "busybox", "sh", "-c",
		`echo out1; echo err1 >&2; sleep 0.2; printf 'q"uote\\back\ttab <&> caf\303\251 \377\n'; printf 'no newline'`)
	if got := e.Must("wait", "talk"); got != "0\n" {
		t.Fatalf("wait: %q", got)
	}
	r := e.Run("logs", "talk")
	if r.Code != 0 || r.Stdout != "out1\nq\"uote\\back\ttab <&> café \ufffd\nno newline" || r.Stderr != "err1\n" {
		t.Fatalf("logs: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// The file is docker's json-file: one object per record, log, stream, time.
	logPath := e.inspectF("talk", "{{.LogPath}}")
	if !strings.HasSuffix(logPath, id+"-json.log") {
		t.Fatalf("LogPath %q", logPath)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(string(b), `{"log":"out1\n","stream":"stdout","time":"`) ||
		!strings.Contains(string(b), `{"log":"err1\n","stream":"stderr","time":"`) {
		t.Fatalf("log file: %q", b)
	}
	if !strings.Contains(string(b), `{"log":"q\"uote\\back\ttab \u003c\u0026\u003e café \ufffd\n","stream":"stdout"`) {
		t.Fatalf("escaping: %s", b)
	}
	for _, l := range lines {
		var rec struct {
			Log, Stream string
			Time        time.Time
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Time.IsZero() || time.Since(rec.Time) > time.Minute {
			t.Fatalf("record %s: %v %+v", l, err, rec)
		}
	}
	// --tail, -t, --since, --until.
	if out := e.Must("logs", "--tail", "1", "talk"); out != "no newline" {
		t.Fatalf("--tail 1: %q", out)
	}
	ts := e.Must("logs", "-t", "--tail", "2", "talk")
	if f := strings.Fields(ts); len(f) < 2 || len(f[0]) != len("2006-01-02T15:04:05.000000000Z") || !strings.HasSuffix(ts, " no newline") {
		t.Fatalf("-t: %q", ts)
	}
	if out := e.Run("logs", "--since", "1m", "talk"); out.Stdout != r.Stdout {
		t.Fatalf("--since 1m: %q", out.Stdout)
	}
	if out := e.Run("logs", "--until", "2000-01-01", "talk"); out.Stdout != "" || out.Stderr != "" {
		t.Fatalf("--until 2000: %q %q", out.Stdout, out.Stderr)
	}
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	if out := e.Run("logs", "--since", future, "talk"); out.Stdout != "" {
		t.Fatalf("--since the future: %q", out.Stdout)
	}
	// logs -f follows a running container until it ends, restarts included.
	e.runD("--name", "slow", "--restart", "on-failure:1", "busybox", "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done; exit 1")
	start := time.Now()
	r = e.Run("logs", "-f", "slow")
	if r.Stdout != "line1\nline2\nline3\nline1\nline2\nline3\n" || time.Since(start) < 1500*time.Millisecond {
		t.Fatalf("logs -f: %q after %s", r.Stdout, time.Since(start))
	}
	// With a terminal, everything is stdout.
	e.runD("--name", "tty", "-t", "busybox", "sh", "-c", "echo to-err >&2; tty")
	e.Must("wait", "tty")
	if r := e.Run("logs", "tty"); r.Stdout != "to-err\r\n/dev/pts/0\r\n" || r.Stderr != "" {
		t.Fatalf("tty logs: %q %q", r.Stdout, r.Stderr)
	}
	// --log-driver none keeps nothing; logs says so.
	e.runD("--name", "quiet", "--log-driver", "none", "busybox", "echo", "hi")
	e.Must("wait", "quiet")
	e.Fails([]string{"does not support reading"}, "logs", "quiet")
	// A foreground run is logged too.
	e.mustCode(3, "run", "--name", "fg", "busybox", "sh", "-c", "echo a; echo b >&2; exit 3")
	if r := e.Run("logs", "fg"); r.Stdout != "a\n" || r.Stderr != "b\n" {
		t.Fatalf("logs of a foreground run: %q %q", r.Stdout, r.Stderr)
	}
	e.Must("rm", "talk", "slow", "tty", "quiet", "fg")
	e.assertNoContainers()
}

func TestDetachLogRotation(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	// 400 records of 100 bytes and more: several rotations of 4 KiB files.
	e.runD("--name", "chatty", "--log-opt", "max-size=4k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
		`i=0; while [ $i -lt 400 ]; do printf 'line %04d %090d\n' $i 0; i=$((i+1)); done`)
	e.Must("wait", "chatty")
	logPath := e.inspectF("chatty", "{{.LogPath}}")
	for _, p := range []string{logPath, logPath + ".1", logPath + ".2"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 4096+300 {
			t.Fatalf("%s has %d bytes, over max-size", p, fi.Size())
		}
	}
	if _, err := os.Stat(logPath + ".3"); err == nil {
		t.Fatal("more files than max-file")
	}
	// What is left is the end of the output, in order, without gaps.
	out := e.Must("logs", "chatty")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 40 || !strings.HasPrefix(lines[len(lines)-1], "line 0399 ") {
		t.Fatalf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
	first, _ := strconv.Atoi(strings.Fields(lines[0])[1])
	for i, l := range lines {
		if want := fmt.Sprintf("line %04d ", first+i); !strings.HasPrefix(l, want) {
			t.Fatalf("line %d is %q, want %q...", i, l, want)
		}
	}
	if out := e.Must("logs", "--tail", "3", "chatty"); strings.Count(out, "\n") != 3 || !strings.Contains(out, "line 0397") {
		t.Fatalf("--tail 3: %q", out)
	}
	e.Fails([]string{"max-file needs max-size"}, "run", "-d", "--log-opt", "max-file=2", "busybox", "true")
	e.Fails([]string{"log driver \"syslog\" is not available"}, "run", "-d", "--log-driver", "syslog", "busybox", "true")
	e.Must("rm", "chatty")
	e.assertNoContainers()
}

func TestDetachRestartPolicy(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	// on-failure:3 restarts exactly three times, then stays exited.
	e.runD("--name", "flaky", "--restart", "on-failure:3", "busybox", "sh", "-c", "echo run; exit 3")
	if out := e.Must("wait", "flaky"); out != "3\n" {
		t.Fatalf("wait: %q", out)
	}
	e.waitStatus("flaky", "exited", 10*time.Second)
	time.Sleep(500 * time.Millisecond) // a fourth restart would come within 800 ms
	if got := e.inspectF("flaky", "{{.RestartCount}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"); got != "3 3 on-failure 3" {
		t.Fatalf("inspect: %q", got)
	}
	if out := e.Must("logs", "flaky"); out != "run\nrun\nrun\nrun\n" {
		t.Fatalf("four runs: %q", out)
	}
	// Docker's back-off: 100, 200, 400 ms between the runs.
	var starts []time.Time
	b, _ := os.ReadFile(e.inspectF("flaky", "{{.LogPath}}"))
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec struct{ Time time.Time }
		json.Unmarshal([]byte(l), &rec)
		starts = append(starts, rec.Time)
	}
	for i, want := range []time.Duration{100, 200, 400} {
		if gap := starts[i+1].Sub(starts[i]); gap < want*time.Millisecond || gap > want*time.Millisecond+2*time.Second {
			t.Errorf("gap %d: %s, want about %dms", i, gap, want)
		}
	}
	// on-failure does not restart a success.
	e.runD("--name", "fine", "--restart", "on-failure", "busybox", "true")
	e.Must("wait", "fine")
	e.waitStatus("fine", "exited", 5*time.Second)
	if got := e.inspectF("fine", "{{.RestartCount}}"); got != "0" {
		t.Fatalf("on-failure after exit 0: %s restarts", got)
	}
	// always restarts a success, shows "Restarting", and stop ends it for good.
	e.runD("--name", "loop", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2")
	e.eventually(10*time.Second, "always never restarted", func() bool {
		n, _ := strconv.Atoi(e.inspectF("loop", "{{.RestartCount}}"))
		return n >= 2
	})
	e.eventually(10*time.Second, "ps never showed Restarting", func() bool {
		return strings.HasPrefix(e.Must("ps", "--filter", "name=loop", "--format", "{{.Status}}"), "Restarting (0) ")
	})
	e.Must("stop", "loop")
	n := e.inspectF("loop", "{{.RestartCount}}")
	time.Sleep(time.Second)
	if got := e.inspectF("loop", "{{.State.Status}} {{.RestartCount}}"); got != "exited "+n {
		t.Fatalf("after stop: %q, was %s restarts", got, n)
	}
	// A fatal kill counts as a stop; start gives the policy back.
	e.runD("--name", "kept", "--restart", "unless-stopped", "busybox", "sleep", "31416")
	e.Must("kill", "kept")
	e.waitStatus("kept", "exited", 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	if got := e.inspectF("kept", "{{.State.Status}} {{.RestartCount}}"); got != "exited 0" {
		t.Fatalf("after kill: %q", got)
	}
	e.Must("start", "kept")
	e.waitStatus("kept", "running", 5*time.Second)
	e.Fails([]string{"--restart always and --rm"}, "run", "-d", "--rm", "--restart", "always", "busybox", "true")
	e.Fails([]string{"invalid restart policy"}, "run", "-d", "--restart", "sometimes", "busybox", "true")
	e.Must("rm", "-f", "flaky", "fine", "loop", "kept")
	e.assertReleased("31416", nil, nil)
}

func TestDetachHealth(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	// starting -> healthy (once /tmp/ok exists) -> unhealthy (2 failures
	// after it goes); the failures of the first second, in the start
	// period, do not count.
	e.runD("--name", "doc", "--health-cmd", "cat /tmp/ok", "--health-interval", "200ms", "--health-retries", "2",
		"--health-start-period", "3s", "--health-start-interval", "100ms", "busybox", "sh", "-c",
		"sleep 1; echo fine > /tmp/ok; sleep 2.5; rm /tmp/ok; sleep 100")
	if got := e.inspectF("doc", "{{.State.Health.Status}}"); got != "starting" {
		t.Fatalf("at start: %q", got)
	}
	if got := e.Must("ps", "--format", "{{.Status}}", "--filter", "name=doc"); !strings.HasSuffix(got, "(health: starting)\n") {
		t.Fatalf("ps at start: %q", got)
	}
	seen := []string{"starting"}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && len(seen) < 4 {
		if s := e.inspectF("doc", "{{.State.Health.Status}}"); s != seen[len(seen)-1] {
			seen = append(seen, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Failures in the start period do not count: no "unhealthy" before "healthy".
	if strings.Join(seen, " ") != "starting healthy unhealthy" {
		t.Fatalf("health went %v", seen)
	}
	var h struct {
		Status        string
		FailingStreak int
		Log           []struct {
			Start, End time.Time
			ExitCode   int
			Output     string
		}
	}
	if err := json.Unmarshal([]byte(e.inspectF("doc", "{{json .State.Health}}")), &h); err != nil {
		t.Fatal(err)
	}
	if h.FailingStreak < 2 || len(h.Log) == 0 || len(h.Log) > 5 || h.Log[len(h.Log)-1].ExitCode != 1 ||
		!strings.Contains(h.Log[len(h.Log)-1].Output, "No such file") {
		t.Fatalf("health record: %+v", h)
	}
	if got := e.Must("ps", "--filter", "health=unhealthy", "--format", "{{.Names}} {{.Status}}"); !strings.HasSuffix(got, "(unhealthy)\n") {
		t.Fatalf("ps filter health=unhealthy: %q", got)
	}
	// A check that runs too long fails with docker's words.
	e.runD("--name", "slowcheck", "--health-cmd", "sleep 5", "--health-timeout", "300ms", "--health-interval", "500ms",
		"--health-retries", "1", "busybox", "sleep", "31417")
	e.eventually(10*time.Second, "the slow check never became unhealthy", func() bool {
		return e.inspectF("slowcheck", "{{.State.Health.Status}}") == "unhealthy"
	})
	if got := e.inspectF("slowcheck", "{{(index .State.Health.Log 0).ExitCode}} {{(index .State.Health.Log 0).Output}}"); got != "-1 Health check exceeded timeout (300ms)" {
		t.Fatalf("timeout: %q", got)
	}
	// The image's HEALTHCHECK, and --no-healthcheck.
	e.Must("import", "--change", `HEALTHCHECK --interval=200ms CMD ["true"]`, "--change", `CMD ["sleep", "31417"]`, BusyboxTar(t), "checked")
	e.runD("--name", "img", "checked")
	if got := e.inspectF("img", "{{json .Config.Healthcheck.Test}}"); got != `["CMD","true"]` {
		t.Fatalf("image healthcheck: %s", got)
	}
	e.eventually(10*time.Second, "the image's check never passed", func() bool {
		return e.inspectF("img", "{{.State.Health.Status}}") == "healthy"
	})
	e.runD("--name", "nocheck", "--no-healthcheck", "checked")
	if got := e.inspectF("nocheck", "{{if .State.Health}}has{{else}}none{{end}} {{if .Config.Healthcheck}}has{{else}}none{{end}}"); got != "none none" {
		t.Fatalf("--no-healthcheck: %q", got)
	}
	e.Fails([]string{"--no-healthcheck conflicts"}, "run", "-d", "--no-healthcheck", "--health-cmd", "true", "busybox")
	e.Must("rm", "-f", "doc", "slowcheck", "img", "nocheck")
	e.assertReleased("31417", nil, nil)
}

func TestDetachStopKillWait(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	// pid 1 ignores SIGTERM without a handler: stop waits -t, then kills.
	e.runD("--name", "deaf", "busybox", "sleep", "31418")
	start := time.Now()
	if out := e.Must("stop", "-t", "2", "deaf"); out != "deaf\n" {
		t.Fatalf("stop printed %q", out)
	}
	if d := time.Since(start); d < 2*time.Second || d > 6*time.Second {
		t.Fatalf("stop -t 2 took %s", d)
	}
	if got := e.inspectF("deaf", "{{.State.Status}} {{.State.ExitCode}}"); got != "exited 137" {
		t.Fatalf("after stop: %q", got)
	}
	// A container that handles SIGTERM stops at once with its own code;
	// --stop-timeout and --stop-signal come from run.
	e.runD("--name", "polite", "--stop-timeout", "30", "busybox", "sh", "-c", `trap "exit 42" TERM; echo ready; while true; do sleep 0.1; done`)
	e.waitReady("polite")
	start = time.Now()
	e.Must("stop", "polite")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stop of a TERM handler took %s", d)
	}
	if got := e.inspectF("polite", "{{.State.ExitCode}}"); got != "42" {
		t.Fatalf("exit code after TERM: %s", got)
	}
	e.runD("--name", "usr", "--stop-signal", "USR1", "--stop-timeout", "1", "busybox", "sh", "-c", `trap "exit 7" USR1; echo ready; while true; do sleep 0.1; done`)
	e.waitReady("usr")
	e.Must("stop", "usr")
	if got := e.inspectF("usr", "{{.State.ExitCode}} {{.Config.StopSignal}}"); got != "7 USR1" {
		t.Fatalf("--stop-signal: %q", got)
	}
	// stop -s overrides the signal; stop of a stopped container is fine.
	e.Must("start", "usr")
	e.waitStatus("usr", "running", 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	e.Must("stop", "-s", "KILL", "usr")
	if got := e.inspectF("usr", "{{.State.ExitCode}}"); got != "137" {
		t.Fatalf("stop -s KILL: %s", got)
	}
	e.Must("stop", "usr")
	// wait prints the exit code, for several containers.
	e.runD("--name", "w1", "busybox", "sh", "-c", "sleep 0.5; exit 3")
	e.runD("--name", "w2", "busybox", "sh", "-c", "exit 4")
	if out := e.Must("wait", "w1", "w2"); out != "3\n4\n" {
		t.Fatalf("wait: %q", out)
	}
	// kill -s USR1 reaches the process; kill of a stopped container fails.
	e.runD("--name", "sig", "busybox", "sh", "-c", `trap "echo got usr1" USR1; echo ready; while true; do sleep 0.1; done`)
	e.waitReady("sig")
	e.Must("kill", "-s", "USR1", "sig")
	e.eventually(5*time.Second, "USR1 never arrived", func() bool { return e.Must("logs", "sig") == "ready\ngot usr1\n" })
	if got := e.inspectF("sig", "{{.State.Status}}"); got != "running" {
		t.Fatalf("after USR1: %s", got)
	}
	e.Must("kill", "sig")
	e.Must("wait", "sig")
	e.Fails([]string{"is not running"}, "kill", "sig")
	e.Fails([]string{"no such container: ghost"}, "stop", "ghost")
	// restart of an exited and of a running container.
	id := e.runD("--name", "again", "busybox", "sh", "-c", "echo started; sleep 31418")
	e.eventually(5*time.Second, "no first start in the log", func() bool { return e.Must("logs", "again") == "started\n" })
	e.Must("restart", "-t", "0", "again")
	e.waitStatus("again", "running", 5*time.Second)
	var logs string
	e.eventually(5*time.Second, "no second start in the log", func() bool {
		logs = e.Must("logs", "again")
		return logs == "started\nstarted\n"
	})
	if got := e.Must("ps", "-q", "--no-trunc", "--filter", "name=again"); got != id+"\n" {
		t.Fatalf("ps after restart: %q", got)
	}
	// rm refuses a running container; rm -f removes it.
	e.Fails([]string{"it is running"}, "rm", "again")
	e.Must("rm", "-f", "again")
	e.Must("rm", "deaf", "polite", "usr", "w1", "w2", "sig")
	e.assertReleased("31418", []string{id}, nil)
}

func TestDetachCreateStart(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	e.Must("create", "--name", "later", "busybox", "sh", "-c", "echo from-start; sleep 31419")
	if got := e.inspectF("later", "{{.State.Status}}"); got != "created" {
		t.Fatalf("after create: %s", got)
	}
	if out := e.Must("wait", "later"); out != "0\n" {
		t.Fatalf("wait on a created container: %q", out)
	}
	if out := e.Must("start", "later"); out != "later\n" {
		t.Fatalf("start printed %q", out)
	}
	e.waitStatus("later", "running", 5*time.Second)
	e.Must("start", "later") // already running: nothing to do
	e.eventually(5*time.Second, "no output", func() bool { return e.Must("logs", "later") == "from-start\n" })
	e.Must("kill", "later")
	e.Must("wait", "later")
	// start -a of an exited container runs it in the foreground.
	e.Must("create", "--name", "fg", "busybox", "sh", "-c", "echo fg; exit 5")
	r := e.Run("start", "-a", "fg")
	if r.Code != 5 || r.Stdout != "fg\n" {
		t.Fatalf("start -a: exit %d %q %s", r.Code, r.Stdout, r.Stderr)
	}
	r = e.Run("start", "-a", "fg")
	if r.Code != 5 || r.Stdout != "fg\n" {
		t.Fatalf("start -a again: exit %d %q %s", r.Code, r.Stdout, r.Stderr)
	}
	// A detached start that fails: docker's exit codes, the container exited with the reason.
	e.Must("create", "--name", "broken", "busybox", "nosuchcmd")
	r = e.Run("start", "broken")
	if r.Code != 1 || !strings.Contains(r.Stderr, "executable file not found") {
		t.Fatalf("start of a missing command: exit %d %s", r.Code, r.Stderr)
	}
	r = e.Run("run", "-d", "--name", "broken2", "busybox", "nosuchcmd")
	if r.Code != 127 || !strings.Contains(r.Stderr, "executable file not found") {
		t.Fatalf("run -d of a missing command: exit %d %s", r.Code, r.Stderr)
	}
	if got := e.inspectF("broken2", "{{.State.Status}} {{.State.ExitCode}}"); got != "exited 127" {
		t.Fatalf("failed run -d: %q", got)
	}
	// run -d --rm removes the container when it ends.
	e.runD("--rm", "--name", "gone", "busybox", "true")
	e.eventually(10*time.Second, "--rm container still there", func() bool {
		return !strings.Contains(e.Must("ps", "-a", "--format", "{{.Names}}"), "gone")
	})
	// container prune removes the stopped ones and keeps the running.
	e.runD("--name", "stays", "busybox", "sleep", "31419")
	out := e.Must("container", "prune", "-f")
	for _, n := range []string{"later", "fg", "broken", "broken2"} {
		if strings.Contains(e.Must("ps", "-a", "--format", "{{.Names}}"), n+"\n") {
			t.Fatalf("prune left %s: %s", n, out)
		}
	}
	if got := e.Must("ps", "--format", "{{.Names}}"); got != "stays\n" {
		t.Fatalf("after prune: %q", got)
	}
	e.Must("rm", "-f", "stays")
	e.assertReleased("31419", nil, nil)
}

// kill -9 of a monitor: ps never shows a wrong state, rm -f cleans up.
func TestDetachMonitorKilled(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	id := e.runD("--name", "orphan", "--restart", "always", "busybox", "sleep", "31420")
	mon := e.monitorPID("orphan")
	if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.eventually(5*time.Second, "the monitor did not die", func() bool { return len(processesWith("dir="+e.Root)) == 0 })
	// The container still runs, and says so.
	for i := 0; i < 5; i++ {
		if got := e.Must("ps", "--format", "{{.Names}} {{.State}}"); got != "orphan running\n" {
			t.Fatalf("with its monitor gone: %q", got)
		}
	}
	// Once its process ends, it is exited (no monitor: nobody restarts it).
	pid, _ := strconv.Atoi(e.inspectF("orphan", "{{.State.Pid}}"))
	if len(processesWith("31420")) != 1 || pid <= 0 {
		t.Fatalf("container process: %v, pid %d", processesWith("31420"), pid)
	}
	e.Must("kill", "orphan")
	e.waitStatus("orphan", "exited", 5*time.Second)
	if got := e.inspectF("orphan", "{{.State.Error}}"); !strings.Contains(got, "monitor was killed") {
		t.Fatalf("reason: %q", got)
	}
	// rm -f of a running container whose monitor was killed.
	e.runD("--name", "orphan2", "-p", "127.0.0.1::80", "busybox", "httpd", "-f", "-p", "80", "-h", "/tmp")
	port, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(e.Must("port", "orphan2", "80")), "127.0.0.1:"))
	if err := syscall.Kill(e.monitorPID("orphan2"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	id2 := e.inspectF("orphan2", "{{.Id}}")
	e.Must("rm", "-f", "orphan", "orphan2")
	e.assertReleased("31420", []string{id, id2}, []int{port})
}

// The holder dies while a detached container runs (rootless); as root,
// where there is no holder, the same record after the machine restarts:
// monitor and container gone without a word.
func TestDetachHolderGone(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	if !Rootless() {
		e.Busybox()
		e.runD("--name", "before", "busybox", "sleep", "31421")
		pid, _ := strconv.Atoi(e.inspectF("before", "{{.State.Pid}}"))
		syscall.Kill(e.monitorPID("before"), syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
		e.waitStatus("before", "exited", 5*time.Second)
		if got := e.inspectF("before", "{{.State.Error}}"); !strings.Contains(got, "exit code is unknown") {
			t.Fatalf("reason: %q", got)
		}
		e.Must("rm", "before")
		e.assertReleased("31421", nil, nil)
		return
	}
	rt := privateRuntime(t, e, "1h")
	e.Busybox()
	id := e.runD("--name", "before", "--restart", "always", "busybox", "sleep", "31421")
	h := readHolder(t, rt)
	for _, p := range []int{h.parent, h.child, h.pause} {
		syscall.Kill(p, syscall.SIGKILL)
	}
	if !waitHolderGone(rt, 5*time.Second) {
		t.Fatal("the holder did not die")
	}
	// The next command starts a fresh holder and shows the container exited, with the reason.
	e.waitStatus("before", "exited", 10*time.Second)
	if got := e.inspectF("before", "{{.State.Error}}"); !strings.Contains(got, "holder stopped") {
		t.Fatalf("reason: %q", got)
	}
	e.eventually(5*time.Second, "processes of the old holder's container left", func() bool { return len(processesWith("31421")) == 0 })
	// It starts again in the new holder, and rm -f cleans up.
	e.Must("start", "before")
	e.waitStatus("before", "running", 5*time.Second)
	e.Must("rm", "-f", "before")
	e.assertReleased("31421", []string{id}, nil)
}

// -p through the holder's port driver (rootless) or DNAT (root): a GET
// from the host's loopback reaches the container.
func TestDetachPublish(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	www := filepath.Join(e.Dir, "www")
	os.MkdirAll(www, 0o755)
	os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from the container\n"), 0o644)
	port := freePort(t)
	id := e.runD("--name", "web", "-p", fmt.Sprintf("%d:80", port), "-v", www+":/www:ro", "busybox", "httpd", "-f", "-h", "/www")
	if got := e.Must("ps", "--format", "{{.Ports}}"); got != fmt.Sprintf("0.0.0.0:%d->80/tcp\n", port) {
		t.Fatalf("ps ports: %q", got)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
	var body string
	e.eventually(10*time.Second, "GET "+url+" never answered: "+body, func() bool {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			body = err.Error()
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	if body != "hello from the container\n" {
		t.Fatalf("GET: %q", body)
	}
	// The port is taken: a clear error naming it, nothing half-made.
	r := e.Run("run", "-d", "--name", "web2", "-p", fmt.Sprintf("%d:80", port), "busybox", "httpd", "-f")
	if r.Code != 125 || !strings.Contains(r.Stderr, fmt.Sprintf("host port %d/tcp", port)) {
		t.Fatalf("second -p %d: exit %d: %s", port, r.Code, r.Stderr)
	}
	if got := e.inspectF("web2", "{{.State.Status}} {{.State.ExitCode}}"); got != "exited 125" {
		t.Fatalf("web2: %q", got)
	}
	id2 := e.inspectF("web2", "{{.Id}}")
	leases := e.Must("network", "inspect", "nook", "--format", `{{range $id, $e := .Containers}}{{$id}} {{end}}`)
	if strings.Contains(leases, id2) || !strings.Contains(leases, id) {
		t.Fatalf("leases after the failed start: %s", leases)
	}
	// A port a host program holds.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := l.Addr().(*net.TCPAddr).Port
	r = e.Run("run", "-d", "--name", "web3", "-p", fmt.Sprintf("127.0.0.1:%d:80", held), "busybox", "httpd", "-f")
	l.Close()
	if r.Code != 125 || !strings.Contains(r.Stderr, strconv.Itoa(held)) || !strings.Contains(r.Stderr, "in use") {
		t.Fatalf("-p on a held port: exit %d: %s", r.Code, r.Stderr)
	}
	e.Must("rm", "-f", "web", "web2", "web3")
	e.assertReleased("httpd -f -h /www", []string{id, id2}, []int{port})
}

// 20 containers started detached from 4 invocations at once, then removed:
// nothing left behind.
func TestDetachConcurrent(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []string
	var ports []int
	errs := make(chan string, 40)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				r := e.Run("run", "-d", "--name", fmt.Sprintf("c%d-%d", w, i), "-p", "127.0.0.1::80",
					"busybox", "httpd", "-f", "-p", "80", "-h", "/tmp", "-r", "token31422")
				if r.Code != 0 || len(strings.TrimSpace(r.Stdout)) != 64 {
					errs <- fmt.Sprintf("worker %d run %d: exit %d %q %s", w, i, r.Code, r.Stdout, r.Stderr)
					continue
				}
				mu.Lock()
				ids = append(ids, strings.TrimSpace(r.Stdout))
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
	if t.Failed() {
		t.FailNow()
	}
	if got := strings.Count(e.Must("ps", "-q"), "\n"); got != 20 {
		t.Fatalf("%d containers running, want 20", got)
	}
	sc := bufio.NewScanner(strings.NewReader(e.Must("ps", "--format", "{{.Ports}}")))
	for sc.Scan() {
		p := strings.TrimSuffix(strings.TrimPrefix(sc.Text(), "127.0.0.1:"), "->80/tcp")
		n, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("ps ports %q", sc.Text())
		}
		ports = append(ports, n)
	}
	if len(processesWith("token31422")) != 20 {
		t.Fatalf("%d container processes", len(processesWith("token31422")))
	}
	// Removed from 4 invocations at once.
	var wg2 sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg2.Add(1)
		go func(w int) {
			defer wg2.Done()
			args := []string{"rm", "-f"}
			for i := 0; i < 5; i++ {
				args = append(args, fmt.Sprintf("c%d-%d", w, i))
			}
			if r := e.Run(args...); r.Code != 0 {
				t.Errorf("rm -f: exit %d %s", r.Code, r.Stderr)
			}
		}(w)
	}
	wg2.Wait()
	e.assertReleased("token31422", ids, ports)
}

// The monitor stays small: at most 8 MiB resident.
func TestDetachMonitorMemory(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	e.runD("--name", "small", "--health-cmd", "true", "--health-interval", "100ms", "busybox", "sh", "-c",
		`while true; do echo "a line of output"; sleep 0.01; done`)
	time.Sleep(time.Second) // logs written, health checks run
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.monitorPID("small")))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			t.Logf("monitor VmRSS %d kB", kb)
			if kb > 8*1024 {
				t.Fatalf("monitor VmRSS %d kB, over 8 MiB", kb)
			}
		}
	}
	e.Must("rm", "-f", "small")
	e.assertNoContainers()
}
