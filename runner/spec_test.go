package runner

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func TestCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		img     v1.Config
		o       Options
		want    []string
		wantErr bool
	}{
		{"image cmd", v1.Config{Cmd: []string{"sh"}}, Options{}, []string{"sh"}, false},
		{"args replace cmd", v1.Config{Cmd: []string{"sh"}}, Options{Cmd: []string{"echo", "hi"}}, []string{"echo", "hi"}, false},
		{"entrypoint plus cmd", v1.Config{Entrypoint: []string{"/init"}, Cmd: []string{"-v"}}, Options{}, []string{"/init", "-v"}, false},
		{"entrypoint plus args", v1.Config{Entrypoint: []string{"/init"}, Cmd: []string{"-v"}}, Options{Cmd: []string{"-q"}}, []string{"/init", "-q"}, false},
		{"--entrypoint resets cmd", v1.Config{Entrypoint: []string{"/init"}, Cmd: []string{"-v"}}, Options{EntrypointSet: true, Entrypoint: []string{"ls"}}, []string{"ls"}, false},
		{"--entrypoint with args", v1.Config{Cmd: []string{"sh"}}, Options{EntrypointSet: true, Entrypoint: []string{"ls"}, Cmd: []string{"-l"}}, []string{"ls", "-l"}, false},
		{"--entrypoint '' clears", v1.Config{Entrypoint: []string{"/init"}, Cmd: []string{"sh"}}, Options{EntrypointSet: true, Entrypoint: []string{""}, Cmd: []string{"id"}}, []string{"id"}, false},
		{"--entrypoint '' and nothing", v1.Config{Entrypoint: []string{"/init"}, Cmd: []string{"sh"}}, Options{EntrypointSet: true, Entrypoint: []string{""}}, nil, true},
		{"nothing at all", v1.Config{}, Options{}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Command(tt.img, &tt.o)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			var ue *UserError
			if err != nil && !errors.As(err, &ue) {
				t.Fatalf("error %v is not a UserError", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		image      []string
		user       []string
		tty        bool
		home       string
		want       []string
		wantAbsent string
	}{
		{"defaults", nil, nil, false, "/root",
			[]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=h", "HOME=/root"}, ""},
		{"image PATH wins", []string{"PATH=/x", "A=1"}, nil, false, "",
			[]string{"PATH=/x", "HOSTNAME=h", "A=1", "HOME=/"}, ""},
		{"user overrides image", []string{"A=1", "B=2"}, []string{"A=3", "C=4"}, true, "/home/u",
			[]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=h", "TERM=xterm", "A=3", "B=2", "C=4", "HOME=/home/u"}, ""},
		{"HOME kept", []string{"HOME=/data"}, nil, false, "/root",
			[]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=h", "HOME=/data"}, ""},
		{"HOSTNAME overridable", nil, []string{"HOSTNAME=x"}, false, "/",
			[]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=x", "HOME=/"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Env(tt.image, tt.user, "h", tt.tty, tt.home)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// fakeRootfs writes an image's passwd and group files.
func fakeRootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\nuser:x:1000:\nstaff:x:50:user\nnobody:x:65534:\naudio:x:29:\n",
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolveUser(t *testing.T) {
	t.Parallel()
	root := fakeRootfs(t)
	tests := []struct {
		spec     string
		groupAdd []string
		uid, gid int
		sgids    []int
		home     string
		errLike  string
	}{
		{"", nil, 0, 0, nil, "/root", ""},
		{"root", nil, 0, 0, nil, "/root", ""},
		{"user", nil, 1000, 1000, []int{50}, "/home/user", ""},
		{"user:staff", nil, 1000, 50, nil, "/home/user", ""},
		{"1000", nil, 1000, 1000, []int{50}, "/home/user", ""},
		{"4242", nil, 4242, 0, nil, "/", ""},
		{"4242:4343", nil, 4242, 4343, nil, "/", ""},
		{"nobody:nobody", nil, 65534, 65534, nil, "/", ""},
		{"user", []string{"audio", "7"}, 1000, 1000, []int{7, 29, 50}, "/home/user", ""},
		{"nosuch", nil, 0, 0, nil, "", "unable to find user nosuch"},
		{"user:nosuch", nil, 0, 0, nil, "", "unable to find group nosuch"},
		{"user", []string{"nogroup"}, 0, 0, nil, "", "--group-add"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			eu, err := ResolveUser(root, tt.spec, tt.groupAdd)
			if tt.errLike != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errLike) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errLike)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if eu.Uid != tt.uid || eu.Gid != tt.gid || eu.Home != tt.home || !reflect.DeepEqual(nilIfEmpty(eu.Sgids), tt.sgids) {
				t.Fatalf("got uid=%d gid=%d sgids=%v home=%q", eu.Uid, eu.Gid, eu.Sgids, eu.Home)
			}
		})
	}
	// A passwd that is a symlink out of the root filesystem is read inside it.
	evil := t.TempDir()
	if err := os.MkdirAll(filepath.Join(evil, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(evil, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveUser(evil, "root", nil); err == nil || !strings.Contains(err.Error(), "unable to find user root") {
		t.Fatalf("a passwd symlinked to the host's was followed out of the rootfs: err=%v", err)
	}
}

func nilIfEmpty(x []int) []int {
	if len(x) == 0 {
		return nil
	}
	return slices.Sorted(slices.Values(x))
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	// ALL and --privileged give what this process's bounding set allows
	// (a machine may lack some, e.g. CAP_SYS_RESOURCE inside a container).
	all := availableCaps()
	tests := []struct {
		name        string
		add, drop   []string
		privileged  bool
		has, hasNot []string
		count       int
		errLike     string
	}{
		{"default", nil, nil, false, []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"}, []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}, len(DefaultCaps), ""},
		{"add short lower", []string{"net_admin"}, nil, false, []string{"CAP_NET_ADMIN"}, nil, len(DefaultCaps) + 1, ""},
		{"drop", nil, []string{"CAP_CHOWN", "kill"}, false, nil, []string{"CAP_CHOWN", "CAP_KILL"}, len(DefaultCaps) - 2, ""},
		{"drop all add one", []string{"NET_BIND_SERVICE"}, []string{"ALL"}, false, []string{"CAP_NET_BIND_SERVICE"}, []string{"CAP_CHOWN"}, 1, ""},
		{"add all", []string{"ALL"}, nil, false, []string{"CAP_SYS_ADMIN"}, nil, len(all), ""},
		{"add all drop one", []string{"ALL"}, []string{"SYS_ADMIN"}, false, nil, []string{"CAP_SYS_ADMIN"}, len(all) - 1, ""},
		{"privileged", nil, nil, true, []string{"CAP_SYS_ADMIN"}, nil, len(all), ""},
		{"unknown", []string{"CAP_FLY"}, nil, false, nil, nil, 0, `unknown capability "CAP_FLY"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Capabilities(tt.add, tt.drop, tt.privileged)
			if tt.errLike != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errLike) {
					t.Fatalf("err = %v, want %q", err, tt.errLike)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.count {
				t.Fatalf("got %d caps %v, want %d", len(got), got, tt.count)
			}
			for _, c := range tt.has {
				if !slices.Contains(got, c) {
					t.Errorf("missing %s", c)
				}
			}
			for _, c := range tt.hasNot {
				if slices.Contains(got, c) {
					t.Errorf("unexpected %s", c)
				}
			}
			if _, err := capValues(got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseVolume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    MountRequest
		errLike string
	}{
		{"/data", MountRequest{Type: "volume", Target: "/data"}, ""},
		{"/host:/ctr", MountRequest{Type: "bind", Source: "/host", Target: "/ctr"}, ""},
		{"/host:/ctr:ro", MountRequest{Type: "bind", Source: "/host", Target: "/ctr", ReadOnly: true}, ""},
		{"/host:/ctr:rw,z", MountRequest{Type: "bind", Source: "/host", Target: "/ctr"}, ""},
		{"/host:/ctr:ro,Z,rslave", MountRequest{Type: "bind", Source: "/host", Target: "/ctr", ReadOnly: true, Options: []string{"rslave"}}, ""},
		{"data:/data", MountRequest{Type: "volume", Source: "data", Target: "/data"}, ""},
		{"data:/data:ro,nocopy", MountRequest{Type: "volume", Source: "data", Target: "/data", ReadOnly: true, NoCopy: true}, ""},
		{"/data:ro", MountRequest{Type: "volume", Target: "/data", ReadOnly: true}, ""},
		{"/host:ctr", MountRequest{}, "not absolute"},
		{"/host:/", MountRequest{}, "cannot mount over /"},
		{"/a:/b:bogus", MountRequest{}, `unknown option "bogus"`},
		{"a:b:c:d", MountRequest{}, "want [SOURCE:]TARGET"},
		{"bad name!:/x", MountRequest{}, "invalid characters"},
		{"/host:/ctr:nocopy", MountRequest{}, "nocopy applies to volumes only"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseVolume(tt.in)
			if tt.errLike != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errLike) {
					t.Fatalf("err = %v, want %q", err, tt.errLike)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseMount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    MountRequest
		errLike string
	}{
		{"type=bind,source=/h,target=/c", MountRequest{Type: "bind", Source: "/h", Target: "/c"}, ""},
		{"type=bind,src=/h,dst=/c,readonly", MountRequest{Type: "bind", Source: "/h", Target: "/c", ReadOnly: true}, ""},
		{"type=bind,src=/h,dst=/c,ro=false,bind-propagation=rshared", MountRequest{Type: "bind", Source: "/h", Target: "/c", Options: []string{"rshared"}}, ""},
		{"type=volume,source=v,target=/v,volume-nocopy", MountRequest{Type: "volume", Source: "v", Target: "/v", NoCopy: true}, ""},
		{"target=/anon", MountRequest{Type: "volume", Target: "/anon"}, ""},
		{"type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770", MountRequest{Type: "tmpfs", Target: "/t", Options: []string{"size=1048576", "mode=1770"}}, ""},
		{`"type=bind","source=/a,b",target=/c`, MountRequest{Type: "bind", Source: "/a,b", Target: "/c"}, ""},
		{"type=bind,target=/c", MountRequest{}, "needs source="},
		{"type=nfs,target=/c", MountRequest{}, `unknown type "nfs"`},
		{"type=bind,source=/a,target=/c,color=red", MountRequest{}, `unknown field "color"`},
		{"type=tmpfs,source=x,target=/t", MountRequest{}, "takes no source"},
		{"type=volume,target=/t,tmpfs-size=1m", MountRequest{}, "need type=tmpfs"},
		{"type=bind,source=/a", MountRequest{}, "empty target"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMount(tt.in)
			if tt.errLike != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errLike) {
					t.Fatalf("err = %v, want %q", err, tt.errLike)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseEnvFile(t *testing.T) {
	t.Parallel()
	lookup := func(k string) (string, bool) {
		if k == "FROM_HOST" {
			return "h", true
		}
		return "", false
	}
	in := "\ufeff# comment\n\nA=1\n  B=two words\nFROM_HOST\nUNSET\nQ=\"quoted\"\nE=\n"
	got, err := ParseEnvFile(strings.NewReader(in), ".env", lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=two words", "FROM_HOST=h", `Q="quoted"`, "E="}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := ParseEnvFile(strings.NewReader("=x\n"), ".env", lookup); err == nil || !strings.Contains(err.Error(), ".env line 1") {
		t.Fatalf("err = %v", err)
	}
	if _, err := ParseEnvFile(strings.NewReader("A B=x\n"), ".env", lookup); err == nil {
		t.Fatal("a name with a space was accepted")
	}
}

func TestResolveMounts(t *testing.T) {
	t.Parallel()
	host := t.TempDir()
	vols := map[string]string{}
	volDir := func(name string, r MountRequest) (string, error) {
		if name == "" {
			name = "anon"
		}
		vols[name] = filepath.Join(host, "vol-"+name)
		return vols[name], nil
	}
	reqs := []MountRequest{
		{Type: "bind", Source: host, Target: "/a/b", ReadOnly: true},
		{Type: "volume", Source: "data", Target: "/a"},
		{Type: "tmpfs", Target: "/t", Options: []string{"size=1m", "exec"}},
	}
	got, err := ResolveMounts(reqs, volDir)
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.Mount{
		{Destination: "/a/b", Type: "bind", Source: host, Options: []string{"rbind", "ro", "rprivate"}},
		{Destination: "/a", Type: "bind", Source: filepath.Join(host, "vol-data"), Options: []string{"rbind", "rprivate"}},
		{Destination: "/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=1048576", "exec"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	_, err = ResolveMounts([]MountRequest{{Type: "bind", Source: "/no/such/dir", Target: "/x"}}, volDir)
	if err == nil || !strings.Contains(err.Error(), "bind source path does not exist: /no/such/dir") {
		t.Fatalf("missing source: err = %v", err)
	}
	_, err = ResolveMounts([]MountRequest{{Type: "tmpfs", Target: "/x"}, {Type: "tmpfs", Target: "/x/"}}, volDir)
	if err == nil || !strings.Contains(err.Error(), "duplicate mount point") {
		t.Fatalf("duplicate: err = %v", err)
	}
}

func TestRlimitsAndSecurityOptions(t *testing.T) {
	t.Parallel()
	rl, err := Rlimits([]string{"nofile=1024:2048", "nproc=50"})
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048}, {Type: "RLIMIT_NPROC", Soft: 50, Hard: 50}}
	if !reflect.DeepEqual(rl, want) {
		t.Fatalf("got %+v", rl)
	}
	for _, bad := range []string{"nofile", "bogus=1", "nofile=10:5"} {
		if _, err := Rlimits([]string{bad}); err == nil {
			t.Errorf("--ulimit %s accepted", bad)
		}
	}
	s, err := securityOptions([]string{"no-new-privileges", "seccomp=unconfined", "label=disable"})
	if err != nil || !s.noNewPrivs || !s.seccompUnconfined {
		t.Fatalf("got %+v, %v", s, err)
	}
	if s, err := securityOptions([]string{"no-new-privileges:false"}); err != nil || s.noNewPrivs {
		t.Fatalf("no-new-privileges:false: %+v %v", s, err)
	}
	for _, bad := range []string{"seccomp", "no-new-privileges=maybe", "magic=1"} {
		if _, err := securityOptions([]string{bad}); err == nil {
			t.Errorf("--security-opt %s accepted", bad)
		}
	}
}

func TestSeccompProfile(t *testing.T) {
	t.Parallel()
	find := func(s *specs.LinuxSeccomp, name string) []specs.LinuxSyscall {
		var out []specs.LinuxSyscall
		for _, sc := range s.Syscalls {
			if slices.Contains(sc.Names, name) {
				out = append(out, sc)
			}
		}
		return out
	}
	def, err := resolveProfile(defaultProfile(), DefaultCaps, "amd64", false)
	if err != nil {
		t.Fatal(err)
	}
	if def.DefaultAction != specs.ActErrno || *def.DefaultErrnoRet != 1 {
		t.Fatalf("default action %s %v", def.DefaultAction, def.DefaultErrnoRet)
	}
	if len(find(def, "mount")) != 0 || len(find(def, "unshare")) != 0 || len(find(def, "ptrace")) != 1 {
		t.Fatalf("default caps: mount/unshare allowed or ptrace not in the minKernel rule")
	}
	if r := find(def, "clone"); len(r) != 1 || len(r[0].Args) != 1 || r[0].Args[0].Op != specs.OpMaskedEqual {
		t.Fatalf("clone without CAP_SYS_ADMIN: %+v", r)
	}
	if r := find(def, "clone3"); len(r) != 1 || r[0].Action != specs.ActErrno || *r[0].ErrnoRet != 38 {
		t.Fatalf("clone3 without CAP_SYS_ADMIN: %+v", r)
	}
	if len(find(def, "arch_prctl")) != 1 || len(find(def, "cacheflush")) != 0 {
		t.Fatal("architecture conditions not applied")
	}
	admin, _ := resolveProfile(defaultProfile(), append(slices.Clone(DefaultCaps), "CAP_SYS_ADMIN"), "amd64", false)
	if len(find(admin, "mount")) != 1 || len(find(admin, "clone3")) != 1 || find(admin, "clone3")[0].Action != specs.ActAllow {
		t.Fatal("CAP_SYS_ADMIN rules not applied")
	}
	restricted, _ := resolveProfile(defaultProfile(), DefaultCaps, "amd64", true)
	if r := find(restricted, "mknod"); len(r) != 1 || len(r[0].Args) != 1 {
		t.Fatalf("mknod not restricted to non-devices: %+v", r)
	}
	for _, s := range []*specs.LinuxSeccomp{def, admin, restricted} {
		p, err := bpfPolicy(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Assemble(); err != nil {
			t.Fatalf("assembling: %v", err)
		}
	}
	// A profile file in docker's format.
	f := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(f, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	custom, err := Seccomp(SeccompOptions{ProfilePath: f}, DefaultCaps)
	if err != nil || custom.DefaultAction != specs.ActAllow || len(custom.Syscalls) != 1 {
		t.Fatalf("custom profile: %+v %v", custom, err)
	}
	if _, err := bpfPolicy(custom); err != nil {
		t.Fatal(err)
	}
	if s, err := Seccomp(SeccompOptions{Unconfined: true}, nil); s != nil || err != nil {
		t.Fatal("unconfined gave a profile")
	}
	if _, err := Seccomp(SeccompOptions{ProfilePath: "/no/such.json"}, nil); err == nil {
		t.Fatal("a missing profile file was accepted")
	}
}

func TestCgroupPlan(t *testing.T) {
	t.Parallel()
	o := &Options{Memory: 64 << 20, CPUs: 1.5, PidsLimit: 100}
	_, err := PlanCgroup(CgroupHost{Root: "/sys/fs/cgroup", IsV2: false}, "abc", o)
	if err == nil || !strings.Contains(err.Error(), "cgroup v1") || !strings.Contains(err.Error(), "--memory, --cpus, --pids-limit") ||
		!strings.Contains(err.Error(), "systemd.unified_cgroup_hierarchy=1") {
		t.Fatalf("v1: err = %v", err)
	}
	if p, err := PlanCgroup(CgroupHost{}, "abc", &Options{}); p != nil || err != nil {
		t.Fatal("no limits gave a plan")
	}
	if _, err := PlanCgroup(CgroupHost{IsV2: true}, "abc", &Options{Memory: 1000}); err == nil {
		t.Fatal("a tiny --memory was accepted")
	}
	// A fake delegated cgroup v2 tree.
	root := t.TempDir()
	leaf := filepath.Join(root, "user.slice", "me", "app.scope")
	os.MkdirAll(leaf, 0o755)
	os.WriteFile(filepath.Join(filepath.Dir(leaf), "cgroup.subtree_control"), []byte("cpu pids\n"), 0o644)
	h := CgroupHost{Root: root, IsV2: true, SelfCgroup: "/user.slice/me/app.scope"}
	if _, err := PlanCgroup(h, "abc", o); err == nil || !strings.Contains(err.Error(), "controllers memory are not enabled") {
		t.Fatalf("missing controller: err = %v", err)
	}
	os.WriteFile(filepath.Join(filepath.Dir(leaf), "cgroup.subtree_control"), []byte("cpu memory pids\n"), 0o644)
	p, err := PlanCgroup(h, "abc", o)
	if err != nil {
		t.Fatal(err)
	}
	if p.Path != filepath.Join(root, "user.slice", "me", "nook-abc") {
		t.Fatalf("path %s", p.Path)
	}
	if err := p.Create(); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"memory.max": "67108864", "cpu.max": "150000 100000", "pids.max": "100"} {
		b, _ := os.ReadFile(filepath.Join(p.Path, f))
		if string(b) != want {
			t.Errorf("%s = %q, want %q", f, b, want)
		}
	}
	r := p.Resources()
	if *r.Memory.Limit != 64<<20 || *r.CPU.Quota != 150000 || *r.Pids.Limit != 100 {
		t.Fatalf("resources %+v", r)
	}
}

// TestSpecGolden checks a whole document for a typical run.
func TestSpecGolden(t *testing.T) {
	t.Parallel()
	root := fakeRootfs(t)
	timeout := 5
	o := &Options{
		Cmd: []string{"httpd", "-f"}, Env: []string{"A=b"}, WorkingDir: "/www", User: "user",
		Tty: true, CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"MKNOD"}, ReadOnly: true,
		ShmSize: 1 << 20, Ulimits: []string{"nofile=100:200"}, SecurityOpt: []string{"no-new-privileges"},
		Hostname: "web", Init: true, StopTimeout: &timeout,
	}
	mounts, err := ResolveMounts([]MountRequest{{Type: "tmpfs", Target: "/run"}, {Type: "bind", Source: root, Target: "/www", ReadOnly: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Spec(SpecInput{
		ID: "0123456789abcdef", Image: v1.Config{Env: []string{"PATH=/bin", "B=c"}, Entrypoint: []string{"/bin/busybox"}},
		Rootfs: root, Options: o, Mounts: mounts, Rootless: true,
		EtcFiles: map[string]string{"/etc/hosts": "/run/x/hosts", "/etc/hostname": "/run/x/hostname"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Host-dependent values out of the golden file.
	s.Root.Path = "ROOTFS"
	for i := range s.Mounts {
		if s.Mounts[i].Source == root {
			s.Mounts[i].Source = "ROOTFS"
		}
	}
	s.Linux.Devices = nil
	s.Linux.Seccomp.Syscalls = s.Linux.Seccomp.Syscalls[:3] // the rest is covered by TestSeccompProfile
	got, _ := json.MarshalIndent(s, "", "  ")
	golden := filepath.Join("testdata", "spec.golden.json")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, append(got, '\n'), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./runner -run TestSpecGolden -update)", err)
	}
	if strings.TrimSpace(string(want)) != strings.TrimSpace(string(got)) {
		t.Fatalf("spec differs from %s (rerun with -update and review):\n%s", golden, got)
	}
	if s.Process.Args[0] != "/bin/busybox" || s.Process.User.UID != 1000 {
		t.Fatal("command or user wrong")
	}
}

func TestSpecErrors(t *testing.T) {
	t.Parallel()
	root := fakeRootfs(t)
	for _, tt := range []struct {
		o       Options
		errLike string
	}{
		{Options{Cmd: []string{"x"}, WorkingDir: "rel"}, "needs to be an absolute path"},
		{Options{Cmd: []string{"x"}, User: "ghost"}, "unable to find user ghost"},
		{Options{Cmd: []string{"x"}, CapAdd: []string{"bogus"}}, "unknown capability"},
		{Options{}, "no command specified"},
		{Options{Cmd: []string{"x"}, SecurityOpt: []string{"seccomp=/nope.json"}}, "seccomp profile"},
	} {
		_, err := Spec(SpecInput{ID: "x", Rootfs: root, Options: &tt.o})
		var ue *UserError
		if err == nil || !strings.Contains(err.Error(), tt.errLike) || !errors.As(err, &ue) {
			t.Errorf("%+v: err = %v, want a UserError with %q", tt.o, err, tt.errLike)
		}
	}
	// --network host keeps the host's network namespace and hostname.
	s, err := Spec(SpecInput{ID: "abcdef0123456789", Rootfs: root, Options: &Options{Cmd: []string{"x"}, Network: "host"}, HostHostname: "box"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			t.Fatal("host network got a network namespace")
		}
	}
	if s.Hostname != "box" {
		t.Fatalf("hostname %q", s.Hostname)
	}
	// Privileged: no masks, no seccomp, /sys writable.
	s, _ = Spec(SpecInput{ID: "abcdef0123456789", Rootfs: root, Options: &Options{Cmd: []string{"x"}, Privileged: true}})
	if s.Linux.Seccomp != nil || len(s.Linux.MaskedPaths) != 0 || len(s.Process.Capabilities.Bounding) != len(availableCaps()) {
		t.Fatal("privileged kept restrictions")
	}
	// A user mount replaces the default /dev/shm.
	s, _ = Spec(SpecInput{ID: "abcdef0123456789", Rootfs: root, Options: &Options{Cmd: []string{"x"}},
		Mounts: []specs.Mount{{Destination: "/dev/shm", Type: "tmpfs", Source: "tmpfs"}}})
	n := 0
	for _, m := range s.Mounts {
		if m.Destination == "/dev/shm" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("/dev/shm mounted %d times", n)
	}
}
