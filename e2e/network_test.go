package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// netName is a network name of this test's own: networks belong to the
// user (or to root), not to a store, so parallel tests must not share
// names.
func netName(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:])
	return "e2e-" + hex.EncodeToString(b[:])
}

func TestNetworkCommands(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	name := netName(t)
	id := strings.TrimSpace(e.Must("network", "create", "--label", "suite=e2e", "--label", "owner="+name, name))
	if len(id) != 64 {
		t.Fatalf("create printed %q, want a 64-hex ID", id)
	}
	t.Cleanup(func() { e.Run("network", "rm", name) })

	ls := e.Must("network", "ls")
	if !strings.HasPrefix(ls, "NETWORK ID") || !strings.Contains(ls, id[:12]+"   "+name) || !strings.Contains(ls, "nook ") {
		t.Fatalf("network ls:\n%s", ls)
	}
	if q := e.Must("network", "ls", "-q", "--filter", "label=owner="+name); strings.TrimSpace(q) != id[:12] {
		t.Fatalf("ls -q --filter: %q", q)
	}
	if f := e.Must("network", "ls", "--filter", "name="+name, "--format", "{{.Name}} {{.Driver}} {{.Label \"suite\"}}"); f != name+" bridge e2e\n" {
		t.Fatalf("ls --format: %q", f)
	}

	var docs []struct {
		Name, Id, Driver string
		IPAM             struct {
			Config []struct{ Subnet, Gateway string }
		}
		Labels map[string]string
	}
	if err := json.Unmarshal([]byte(e.Must("network", "inspect", name, id[:10])), &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Id != id || docs[1].Name != name || docs[0].Labels["suite"] != "e2e" ||
		!strings.HasSuffix(docs[0].IPAM.Config[0].Subnet, ".0/24") || docs[0].IPAM.Config[0].Gateway == "" {
		t.Fatalf("inspect: %+v", docs)
	}
	if s := e.Must("network", "inspect", "-f", "{{.Name}} {{range .IPAM.Config}}{{.Subnet}}{{end}}", "bridge"); s != "nook 10.88.0.0/16\n" {
		t.Fatalf("inspect bridge: %q", s)
	}

	// Bad input: a clear error naming what is wrong, exit 125, nothing made.
	e.Fails([]string{"already exists"}, "network", "create", name)
	e.Fails([]string{"invalid subnet", "10.90.0.1/24"}, "network", "create", "--subnet", "10.90.0.1/24", name+"x")
	e.Fails([]string{"overlaps"}, "network", "create", "--subnet", docs[0].IPAM.Config[0].Subnet, name+"y")
	e.Fails([]string{"not supported"}, "network", "create", "--driver", "macvlan", name+"z")
	e.Fails([]string{"invalid network name"}, "network", "create", "bad/name")
	e.Fails([]string{"pre-defined"}, "network", "rm", "bridge")
	if r := e.Fails([]string{"network " + name + "-missing not found"}, "network", "rm", name+"-missing"); r.Code != 125 {
		t.Fatalf("rm of a missing network: exit %d", r.Code)
	}
	for _, n := range []string{name + "x", name + "y", name + "z"} {
		if r := e.Run("network", "inspect", n); r.Code == 0 {
			t.Fatalf("network %s exists after a failed create", n)
		}
	}
	e.Must("network", "rm", "-f", name+"-missing")

	// --ignore makes a second create a no-op (compose's case).
	if again := strings.TrimSpace(e.Must("network", "create", "--ignore", name)); again != id {
		t.Fatalf("create --ignore printed %q", again)
	}

	// prune: only unused networks matching the filter go.
	other := netName(t)
	e.Must("network", "create", "--label", "suite=other", other)
	t.Cleanup(func() { e.Run("network", "rm", other) })
	out := e.Must("network", "prune", "-f", "--filter", "label=owner="+name)
	if out != "Deleted Networks:\n"+name+"\n" {
		t.Fatalf("prune: %q", out)
	}
	if r := e.Run("network", "inspect", other); r.Code != 0 {
		t.Fatalf("prune removed a network outside its filter: %s", r.Stderr)
	}
	if out := e.Must("network", "rm", other); out != other+"\n" {
		t.Fatalf("rm printed %q", out)
	}
}

// startNook runs nook in the background (a foreground container) and
// stops it when the test ends.
func (e *Env) startNook(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(nookBin, args...)
	cmd.Env = e.env
	cmd.Dir = e.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("nook %s:\n%s", strings.Join(args, " "), out.String())
		}
	})
	return cmd
}

// waitFor retries fn until it succeeds or 10 s pass.
func waitFor(t *testing.T, what string, fn func() error) {
	t.Helper()
	var err error
	for i := 0; i < 100; i++ {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func freePort(t *testing.T) int {
	t.Helper()
	// Ports come from below the kernel's ephemeral range (32768 up) and
	// from a counter: a port a test publishes and then checks is released
	// must not be handed to another parallel test (or to a registry
	// listening on :0) in between.
	for i := 0; i < 2000; i++ {
		p := 20000 + int(nextPort.Add(1)%12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port below 32000")
	return 0
}

// nextPort starts at a point that differs between test processes.
var nextPort = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(int64(os.Getpid()%60) * 200)
	return &n
}()

// Containers on a user network find each other by name; a published port
// answers on the host's 127.0.0.1; a taken port is refused by name; and
// nothing is left when they are gone.
func TestNetworkRun(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	name := netName(t)
	e.Must("network", "create", name)
	t.Cleanup(func() { e.Run("network", "rm", name) })
	srv := "srv-" + name
	port := freePort(t)
	www := filepath.Join(e.Dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from "+srv+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.startNook(t, "run", "--rm", "--name", srv, "--network", name, "-p", fmt.Sprintf("127.0.0.1:%d:80", port),
		"-v", www+":/www:ro", "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitFor(t, "GET "+url, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "hello from "+srv+"\n" {
			return fmt.Errorf("got %q", b)
		}
		return nil
	})
	// A peer reaches it by name; its /etc/hosts says why.
	out := e.Must("run", "--rm", "--network", name, "busybox", "sh", "-c", "wget -qO- http://"+srv+"/ && grep -c '\t"+srv+"$' /etc/hosts")
	if out != "hello from "+srv+"\n1\n" {
		t.Fatalf("peer by name: %q", out)
	}
	// On the default network there are no names (as docker's bridge).
	e.Fails([]string{"bad address"}, "run", "--rm", "busybox", "wget", "-qO-", "http://"+srv+"/")
	// The port is taken: refused by name, exit 125, no container left.
	r := e.Fails([]string{fmt.Sprintf("host port 127.0.0.1:%d/tcp is already", port)},
		"run", "--rm", "--name", "second-"+name, "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "busybox", "true")
	if r.Code != 125 {
		t.Fatalf("port in use: exit %d", r.Code)
	}
	if out := e.Must("ps", "-a", "--format", "{{.Names}}"); strings.Contains(out, "second-") {
		t.Fatalf("the refused container is left: %q", out)
	}
	// A host port something else listens on is refused the same way.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bp := busy.Addr().(*net.TCPAddr).Port
	e.Fails([]string{fmt.Sprintf("host port 127.0.0.1:%d/tcp is already in use", bp)},
		"run", "--rm", "-p", fmt.Sprintf("127.0.0.1:%d:80", bp), "busybox", "true")
	// A network with a container cannot be removed.
	e.Fails([]string{"active endpoints", srv}, "network", "rm", name)
	e.Must("rm", "-f", srv)
	waitFor(t, "port "+strconv.Itoa(port)+" closed", func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return errors.New("still open")
		}
		return nil
	})
	var doc []struct{ Containers map[string]any }
	waitFor(t, "no endpoints left", func() error {
		if err := json.Unmarshal([]byte(e.Must("network", "inspect", name)), &doc); err != nil {
			return err
		}
		if len(doc[0].Containers) != 0 {
			return fmt.Errorf("endpoints: %v", doc[0].Containers)
		}
		return nil
	})
	e.Must("network", "rm", name)
}
