package e2e

import (
	"strings"
	"testing"
)

func TestImportListInspectRemove(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	id := strings.TrimSpace(e.Must("import", "--change", `CMD ["/bin/sh"]`, "--change", "ENV A=b", BusyboxTar(t), "busybox"))
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("import printed %q, want sha256:<64 hex>", id)
	}
	out := e.Must("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
	if want := "busybox:latest " + id[7:19]; strings.TrimSpace(out) != want {
		t.Fatalf("images = %q, want %q", out, want)
	}
	if got := strings.TrimSpace(e.Must("image", "inspect", "--format", "{{.Config.Cmd}} {{.Config.Env}} {{.Id}}", "busybox")); got != "[/bin/sh] [A=b] "+id {
		t.Fatalf("inspect = %q", got)
	}
	e.Must("tag", "busybox", "localhost/busybox:1")
	if out := e.Must("rmi", "busybox"); strings.TrimSpace(out) != "Untagged: busybox:latest" {
		t.Fatalf("rmi of one of two names = %q", out)
	}
	out = e.Must("rmi", "localhost/busybox:1")
	if !strings.Contains(out, "Deleted: "+id) {
		t.Fatalf("rmi of the last name = %q", out)
	}
	if out := e.Must("images", "-q"); out != "" {
		t.Fatalf("images after rmi = %q", out)
	}
	e.Fails([]string{`"nope"`}, "rmi", "nope")
	e.Fails([]string{`"nope"`}, "image", "inspect", "nope")
}
