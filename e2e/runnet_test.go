package e2e

import (
	"strings"
	"testing"
)

// TestRunNetworkFlags checks --ip, --dns-search, --dns-option,
// --network-alias and --domainname reach the container.
func TestRunNetworkFlags(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	name := netName(t)
	e.Must("network", "create", "--subnet", "10.231.7.0/24", name)
	t.Cleanup(func() { e.Run("network", "rm", name) })
	e.Must("run", "-d", "--name", "peer-"+name, "--network", name, "--network-alias", "db", "busybox", "sleep", "60")
	t.Cleanup(func() { e.Run("rm", "-f", "peer-"+name) })
	out := e.Must("run", "--rm", "--network", name, "--ip", "10.231.7.77",
		"--dns-search", "example.org", "--dns-option", "ndots:2", "--hostname", "h", "--domainname", "example.org",
		"busybox", "sh", "-c", "ip -4 addr show eth0; cat /etc/resolv.conf; cat /etc/hosts")
	for _, want := range []string{"inet 10.231.7.77/24", "search example.org", "options ndots:2", " db"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output lacks %q:\n%s", want, out)
		}
	}
	e.Fails([]string{"--ip"}, "run", "--rm", "--network", name, "--ip", "not-an-ip", "busybox", "true")
}
