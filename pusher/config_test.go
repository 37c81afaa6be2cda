package pusher

import (
	"strings"
	"testing"
)

func TestRegistriesConfigResolution(t *testing.T) {
	cfg, err := ParseRegistriesConfig("r.conf", []byte(`
unqualified-search-registries = ["localhost:5000", "docker.io"]

[aliases]
tool = "quay.io/team/tool"

[[registry]]
prefix = "quay.io"
location = "127.0.0.1:5001/quay"
insecure = true

[[registry.mirror]]
location = "127.0.0.1:5002/mirror"
pull-from-mirror = "digest-only"

[[registry]]
prefix = "quay.io/team"
location = "127.0.0.1:5003"

[[registry]]
location = "blocked.example.com"
blocked = true
`))
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		names []string
		eps   []string
	}
	cases := map[string]want{
		"busybox":          {[]string{"localhost:5000/busybox:latest", "docker.io/library/busybox:latest"}, []string{"localhost:5000/busybox:latest", "docker.io/library/busybox:latest"}},
		"quay.io/a/b:1":    {[]string{"quay.io/a/b:1"}, []string{"127.0.0.1:5001/quay/a/b:1"}},
		"quay.io/team/x:2": {[]string{"quay.io/team/x:2"}, []string{"127.0.0.1:5003/x:2"}},
		"tool":             {[]string{"quay.io/team/tool:latest"}, []string{"127.0.0.1:5003/tool:latest"}},
		"quay.io/a/b@sha256:" + strings.Repeat("a", 64): {[]string{"quay.io/a/b@sha256:" + strings.Repeat("a", 64)}, []string{"127.0.0.1:5002/mirror/a/b@sha256:" + strings.Repeat("a", 64), "127.0.0.1:5001/quay/a/b@sha256:" + strings.Repeat("a", 64)}},
	}
	for in, w := range cases {
		cands, err := cfg.candidates(in, false)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var names, eps []string
		for _, c := range cands {
			names = append(names, c.named.String())
			for _, e := range c.endpoints {
				eps = append(eps, e.ref.String())
			}
		}
		if strings.Join(names, " ") != strings.Join(w.names, " ") || strings.Join(eps, " ") != strings.Join(w.eps, " ") {
			t.Errorf("%s: names %v endpoints %v; want %v %v", in, names, eps, w.names, w.eps)
		}
	}
	if c, _ := cfg.candidates("quay.io/a/b:1", false); !c[0].endpoints[0].insecure {
		t.Error("insecure not applied")
	}
	if _, err := cfg.candidates("blocked.example.com/x", false); err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Errorf("blocked registry: %v", err)
	}
}

func TestRegistriesConfigErrors(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{`unqualified-serch-registries = []`, "unknown key"},
		{"[[registry]]\ninsecure = true", "neither prefix nor location"},
		{"[[registry]]\nprefix = \"*.example.com\"\nlocation = \"x.io\"", "wildcard"},
		{`unqualified-search-registries = ["a b"]`, "not a registry"},
		{"[[registry]]\nlocation = \"x.io\"\n[[registry.mirror]]\nlocation = \"m.io\"\npull-from-mirror = \"sometimes\"", "pull-from-mirror"},
		{"unqualified-search-registries = [", "parsing"},
	} {
		_, err := ParseRegistriesConfig("bad.conf", []byte(c.conf))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.conf, err, c.want)
		}
	}
	cfg, _ := ParseRegistriesConfig("empty.conf", []byte(`unqualified-search-registries = []`))
	if _, err := cfg.candidates("busybox", false); err == nil {
		t.Error("short name accepted with no search registries")
	}
}
