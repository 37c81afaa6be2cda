package network

import (
	"reflect"
	"strings"
	"testing"
)

func TestBuildHosts(t *testing.T) {
	extra, err := ParseAddHosts([]string{"db:10.1.2.3", "gw=host-gateway", "v6:[::1]"}, "192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	got := string(BuildHosts(HostsSpec{Hostname: "abc123", Name: "web", SelfIP: "10.89.0.2", Extra: extra},
		[]HostEntry{{IP: "10.89.0.3", Names: []string{"db1", "db"}}, {IP: "10.89.0.4"}}))
	want := `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::	ip6-localnet
ff00::	ip6-mcastprefix
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
10.1.2.3	db
192.0.2.2	gw
::1	v6
10.89.0.2	abc123 web
10.89.0.3	db1 db
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	got = string(BuildHosts(HostsSpec{Hostname: "h", Domainname: "example.org", Name: "h", SelfIP: "10.0.0.5"}, nil))
	if !strings.HasSuffix(got, "10.0.0.5\th.example.org h\n") {
		t.Fatalf("domain name line missing:\n%s", got)
	}
}

func TestParseAddHostsErrors(t *testing.T) {
	for _, s := range []string{"nohost", ":1.2.3.4", "x:", "x:notanip", "x:1.2.3.4.5"} {
		if _, err := ParseAddHosts([]string{s}, "192.0.2.2"); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if _, err := ParseAddHosts([]string{"x:host-gateway"}, ""); err == nil || !strings.Contains(err.Error(), "not known") {
		t.Errorf("host-gateway without a gateway: %v", err)
	}
}

func TestBuildResolvConf(t *testing.T) {
	host := []byte("# generated\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver fd00::1\nsearch corp.example lab.example\noptions ndots:2 edns0\n")
	tests := []struct {
		name string
		host []byte
		spec ResolvSpec
		want string
	}{
		{"host, loopback and IPv6 dropped", host, ResolvSpec{},
			"nameserver 10.255.255.53\nsearch corp.example lab.example\noptions ndots:2 edns0\n"},
		{"rootless default", host, ResolvSpec{Default: []string{SlirpDNS}},
			"nameserver 10.0.2.3\nsearch corp.example lab.example\noptions ndots:2 edns0\n"},
		{"--dns wins over the default", host, ResolvSpec{DNS: []string{"1.1.1.1"}, Default: []string{SlirpDNS}},
			"nameserver 1.1.1.1\nsearch corp.example lab.example\noptions ndots:2 edns0\n"},
		{"search and options replaced", host, ResolvSpec{Search: []string{"a.example"}, Options: []string{"ndots:5"}},
			"nameserver 10.255.255.53\nsearch a.example\noptions ndots:5\n"},
		{"search . clears", host, ResolvSpec{Search: []string{"."}},
			"nameserver 10.255.255.53\noptions ndots:2 edns0\n"},
		{"only a local resolver: docker's fallback", []byte("nameserver 127.0.0.53\n"), ResolvSpec{},
			"nameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
		{"no host file", nil, ResolvSpec{}, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
		{"host network keeps loopback", []byte("nameserver 127.0.0.53\n"), ResolvSpec{KeepLoopback: true},
			"nameserver 127.0.0.53\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BuildResolvConf(tc.host, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	if _, err := BuildResolvConf(host, ResolvSpec{DNS: []string{"dns.example"}}); err == nil {
		t.Fatal("a name accepted as --dns")
	}
}

func TestPeerEntries(t *testing.T) {
	def := &Network{Name: DefaultNetwork, ID: "d", Leases: map[string]*Lease{
		"a": {ContainerID: "a", Name: "a", IP: "10.88.0.2"},
		"x": {ContainerID: "x", Name: "x", IP: "10.88.0.3"},
	}}
	user := &Network{Name: "app", ID: "u", Leases: map[string]*Lease{
		"a": {ContainerID: "a", Name: "a", IP: "10.89.0.2", Aliases: []string{"web", "a"}},
		"b": {ContainerID: "b", Name: "b", IP: "10.89.0.3", Aliases: []string{"db"}},
	}}
	other := &Network{Name: "other", ID: "o", Leases: map[string]*Lease{
		"c": {ContainerID: "c", Name: "c", IP: "10.89.1.2"},
	}}
	got := peerEntries([]*Network{def, user, other}, "a", map[string]bool{"d": true, "u": true})
	want := []HostEntry{{IP: "10.89.0.3", Names: []string{"b", "db"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
	got = peerEntries([]*Network{def, user, other}, "b", map[string]bool{"u": true})
	want = []HostEntry{{IP: "10.89.0.2", Names: []string{"a", "web"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
}
