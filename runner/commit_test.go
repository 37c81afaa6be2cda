package runner

import (
	"archive/tar"
	"bytes"
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestCommitConfig(t *testing.T) {
	img := v1.Config{
		Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "A=img"}, WorkingDir: "/img",
		ExposedPorts: map[string]struct{}{"22/tcp": {}}, Volumes: map[string]struct{}{"/v": {}},
		Labels: map[string]string{"from": "image"}, Hostname: "builder",
	}
	c := &Container{
		Options: Options{
			Cmd: []string{"httpd", "-f"}, Env: []string{"A=run", "B=b"}, WorkingDir: "/www/", User: "1000:1000",
			Ports: []string{"8080:80", "127.0.0.1::53/udp"}, StopSignal: "SIGQUIT",
		},
		Volumes: []MountRequest{{Type: "volume", Target: "/anon"}, {Type: "volume", Source: "named", Target: "/named"}, {Type: "bind", Source: "/h", Target: "/b"}},
		Labels:  map[string]string{"from": "run", "k": "v"},
	}
	got := CommitConfig(img, c)
	want := v1.Config{
		Cmd: []string{"httpd", "-f"}, Env: []string{"PATH=/bin", "A=run", "B=b"}, WorkingDir: "/www", User: "1000:1000",
		ExposedPorts: map[string]struct{}{"22/tcp": {}, "80/tcp": {}, "53/udp": {}},
		Volumes:      map[string]struct{}{"/v": {}, "/anon": {}},
		Labels:       map[string]string{"from": "run", "k": "v"}, StopSignal: "SIGQUIT",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CommitConfig:\n got %+v\nwant %+v", got, want)
	}
	if img.Env[1] != "A=img" || img.Labels["from"] != "image" {
		t.Fatal("CommitConfig changed the image's config")
	}
	// --entrypoint replaces the entrypoint and drops the image's CMD; an
	// empty one clears it.
	got = CommitConfig(v1.Config{Entrypoint: []string{"/init"}, Cmd: []string{"x"}}, &Container{Options: Options{EntrypointSet: true, Entrypoint: []string{""}}})
	if got.Entrypoint != nil || got.Cmd != nil {
		t.Fatalf("--entrypoint '': %+v", got)
	}
	got = CommitConfig(v1.Config{Entrypoint: []string{"/init"}, Cmd: []string{"x"}}, &Container{Options: Options{EntrypointSet: true, Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "y"}}})
	if !reflect.DeepEqual(got.Entrypoint, []string{"/bin/sh"}) || !reflect.DeepEqual(got.Cmd, []string{"-c", "y"}) {
		t.Fatalf("--entrypoint: %+v", got)
	}
}

func TestFilterChanges(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	entries := []*tar.Header{
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/hosts", Typeflag: tar.TypeReg, Mode: 0o644},                // nook's empty mount point: dropped
		{Name: "etc/resolv.conf", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}, // real content: kept
		{Name: "etc/motd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3},        // kept
		{Name: "work/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.x": "1"}},
	}
	bodies := map[string]string{"etc/resolv.conf": "dns\n", "etc/motd": "hi\n"}
	for _, h := range entries {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(bodies[h.Name]))
	}
	tw.Close()
	var out bytes.Buffer
	n, err := filterChanges(&in, &out)
	if err != nil || n != 4 {
		t.Fatalf("filterChanges: %d entries, %v", n, err)
	}
	tr := tar.NewReader(&out)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
		if h.Name == "work/" {
			if _, ok := h.PAXRecords["SCHILY.xattr.trusted.overlay.opaque"]; ok {
				t.Fatal("overlay attribute kept")
			}
			if h.PAXRecords["SCHILY.xattr.user.x"] != "1" {
				t.Fatal("user attribute dropped")
			}
		}
	}
	if !reflect.DeepEqual(names, []string{"etc/", "etc/resolv.conf", "etc/motd", "work/"}) {
		t.Fatalf("entries: %v", names)
	}
}
