package network

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePublish(t *testing.T) {
	tests := []struct {
		in   []string
		want []PortMapping
		err  string
	}{
		{in: []string{"8080:80"}, want: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{in: []string{"80"}, want: []PortMapping{{ContainerPort: 80, Protocol: "tcp"}}},
		{in: []string{"127.0.0.1:8080:80/udp"}, want: []PortMapping{{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "udp"}}},
		{in: []string{"127.0.0.1::80"}, want: []PortMapping{{HostIP: "127.0.0.1", ContainerPort: 80, Protocol: "tcp"}}},
		{in: []string{"[::1]:8080:80"}, want: []PortMapping{{HostIP: "::1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{in: []string{"8000-8001:80-81/TCP"}, want: []PortMapping{
			{HostPort: 8000, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 8001, ContainerPort: 81, Protocol: "tcp"}}},
		{in: []string{"8000-8010:80"}, want: []PortMapping{{HostPort: 8000, HostPortEnd: 8010, ContainerPort: 80, Protocol: "tcp"}}},
		{in: []string{"53:53/sctp"}, want: []PortMapping{{HostPort: 53, ContainerPort: 53, Protocol: "sctp"}}},
		{in: []string{"8000-8002:80-81"}, err: "invalid ranges"},
		{in: []string{"abc"}, err: "invalid publish spec \"abc\""},
		{in: []string{"8080:80/icmp"}, err: "invalid proto"},
		{in: []string{"70000:80"}, err: "invalid hostPort"},
		{in: []string{"1.2.3:80:80"}, err: "invalid IP"},
		{in: []string{"8080:"}, err: "no port specified"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.in, ","), func(t *testing.T) {
			got, err := ParsePublish(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPublishAll(t *testing.T) {
	explicit := []PortMapping{{HostPort: 9000, ContainerPort: 80, Protocol: "tcp"}}
	got, err := PublishAll(explicit, []string{"80/tcp", "53/udp", "8000-8001", "443"})
	if err != nil {
		t.Fatal(err)
	}
	want := []PortMapping{
		{HostPort: 9000, ContainerPort: 80, Protocol: "tcp"},
		{ContainerPort: 443, Protocol: "tcp"},
		{ContainerPort: 53, Protocol: "udp"},
		{ContainerPort: 8000, Protocol: "tcp"},
		{ContainerPort: 8001, Protocol: "tcp"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if _, err := PublishAll(nil, []string{"x/tcp"}); err == nil {
		t.Fatal("bad exposed port accepted")
	}
}

func TestFormatPorts(t *testing.T) {
	ps := []PortMapping{
		{HostPort: 53, ContainerPort: 53, Protocol: "udp"},
		{HostPort: 8081, ContainerPort: 81, Protocol: "tcp"},
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: "127.0.0.1", HostPort: 9000, ContainerPort: 9000, Protocol: "tcp"},
		{HostIP: "::1", HostPort: 9001, ContainerPort: 9001, Protocol: "tcp"},
	}
	got := FormatPorts(ps)
	want := "0.0.0.0:8080-8081->80-81/tcp, 0.0.0.0:53->53/udp, 127.0.0.1:9000->9000/tcp, [::1]:9001->9001/tcp"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if FormatPorts(nil) != "" {
		t.Fatal("no ports should format as empty")
	}
}

func TestPortLines(t *testing.T) {
	ps := []PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: "127.0.0.1", HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
	}
	got, err := PortLines(ps, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:8080"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
	got, err = PortLines(ps, "80")
	if err != nil || !reflect.DeepEqual(got, []string{"0.0.0.0:8080"}) {
		t.Fatalf("filter 80: %q %v", got, err)
	}
	if _, err := PortLines(ps, "80/udp"); err == nil || !strings.Contains(err.Error(), "no public port '80/udp'") {
		t.Fatalf("filter 80/udp: %v", err)
	}
	if _, err := PortLines(ps, "x"); err == nil {
		t.Fatal("bad filter accepted")
	}
}

func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{"8080:80", "127.0.0.1::80/udp", "[::1]:1-2:3-4", "80", "a:b:c:d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePublish([]string{s})
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.ContainerPort == 0 || (p.Protocol != "tcp" && p.Protocol != "udp" && p.Protocol != "sctp") {
				t.Fatalf("%q parsed to %+v", s, p)
			}
		}
	})
}
