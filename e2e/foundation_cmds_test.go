package e2e

// The foundation's commands end to end: info, version, completion,
// unshare, system df/prune/reset, image prune, the images flags, and the
// global store flags (--root, --runroot, --storage-driver, NOOK_ROOT).

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

func TestInfo(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	out := e.Must("info")
	for _, w := range []string{"Mode:", "UID map:", "Store:", e.Root, "Driver:", "Helpers:", "newuidmap", "slirp4netns", "Resource limits:"} {
		if !strings.Contains(out, w) {
			t.Errorf("info does not show %q:\n%s", w, out)
		}
	}
	var in struct {
		Rootless bool
		HostUID  int
		UIDMap   []struct{ Inside, Outside, Size int }
		Store    struct {
			Root, RunRoot, Driver string
			Images                int
		}
		Helpers map[string]string
	}
	if err := json.Unmarshal([]byte(e.Must("info", "--format", "json")), &in); err != nil {
		t.Fatalf("info --format json: %v", err)
	}
	if in.Rootless != Rootless() || in.HostUID != os.Getuid() {
		t.Errorf("info says rootless=%v uid=%d", in.Rootless, in.HostUID)
	}
	if in.Store.Root != e.Root || in.Store.Driver != "overlay" {
		t.Errorf("store %+v, want root %s with the overlay driver", in.Store, e.Root)
	}
	if Rootless() {
		// Our own id as root, then the subordinate range.
		if len(in.UIDMap) < 2 || in.UIDMap[0].Outside != os.Getuid() || in.UIDMap[0].Inside != 0 || in.UIDMap[1].Size < 65536 {
			t.Errorf("uid map %+v: want 0->%d and a subordinate range of at least 65536", in.UIDMap, os.Getuid())
		}
	}
	if got := strings.TrimSpace(e.Must("info", "--format", "{{.Store.Driver}}")); got != "overlay" {
		t.Errorf("info --format template = %q", got)
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	out := e.Must("version")
	for _, w := range []string{"Version:", "Go version:", "OS/Arch:", "linux/"} {
		if !strings.Contains(out, w) {
			t.Errorf("version does not show %q: %s", w, out)
		}
	}
	if got := strings.TrimSpace(e.Must("version", "--format", "{{.OS}}")); got != "linux" {
		t.Errorf("version --format = %q", got)
	}
	if got := e.Must("--version"); !strings.Contains(got, "nook version") {
		t.Errorf("--version = %q", got)
	}
	// Every command's help has examples.
	for _, args := range [][]string{{"import"}, {"images"}, {"image", "inspect"}, {"tag"}, {"rmi"}, {"info"}, {"unshare"}, {"system", "reset"}, {"completion"}} {
		h := e.Must(append(args, "--help")...)
		if !strings.Contains(h, "Examples:") {
			t.Errorf("nook %s --help has no examples:\n%s", strings.Join(args, " "), h)
		}
	}
	// Unknown commands and flags: usage errors, exit 125.
	if r := e.Run("nosuchcommand"); r.Code == 0 {
		t.Errorf("an unknown command succeeded: %s", r.Stdout)
	}
	if r := e.Run("images", "--nosuchflag"); r.Code != 125 || !strings.Contains(r.Stderr, "nosuchflag") {
		t.Errorf("unknown flag: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if r := e.Run("--log-level", "loud", "version"); r.Code != 125 || !strings.Contains(r.Stderr, "loud") {
		t.Errorf("bad --log-level: exit %d, stderr %q", r.Code, r.Stderr)
	}
	e.Must("--log-level", "debug", "version")
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out := e.Must("completion", sh)
		if !strings.Contains(out, "nook") || !strings.Contains(out, "--generate-bash-completion") {
			t.Errorf("completion %s:\n%s", sh, out)
		}
	}
	e.Fails([]string{"tcsh"}, "completion", "tcsh")
	// The bash script is valid bash and completes command names through
	// the binary.
	script := filepath.Join(e.Dir, "nook.bash")
	if err := os.WriteFile(script, []byte(e.Must("completion", "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash not found")
	}
	cmd := exec.Command(bash, "-c", `source "$1"; nook() { "$NOOK" "$@"; }; COMP_WORDS=(nook ima); COMP_CWORD=1; _nook_complete; echo "${COMPREPLY[@]}"`, "x", script)
	cmd.Env = append(e.env, "NOOK="+nookBin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "images") || !strings.Contains(string(out), "image") {
		t.Errorf("completing 'nook ima' gave %q", out)
	}
	if out := e.Must("--generate-bash-completion"); !strings.Contains(out, "import") {
		t.Errorf("--generate-bash-completion = %q", out)
	}
}

func TestUnshare(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	if got := strings.TrimSpace(e.Must("unshare", "id", "-u")); got != "0" {
		t.Errorf("id -u in the namespace = %q", got)
	}
	if r := e.Run("unshare", "sh", "-c", "exit 7"); r.Code != 7 {
		t.Errorf("exit code %d, want the command's 7", r.Code)
	}
	if r := e.Run("unshare", "nosuch-command-xyz"); r.Code != 127 {
		t.Errorf("unknown command: exit %d, want 127 (%s)", r.Code, r.Stderr)
	}
	if got := e.RunIn("hello\n", "unshare", "cat"); got.Stdout != "hello\n" {
		t.Errorf("stdin is not passed on: %q", got.Stdout)
	}
	// Store files belong to subordinate ids; inside they can be listed
	// and removed.
	e.Busybox()
	out := e.Must("unshare", "ls", "-ln", e.Root)
	if !strings.Contains(out, "overlay") {
		t.Errorf("ls of the store inside the namespace: %s", out)
	}
	if Rootless() {
		m := e.Must("unshare", "cat", "/proc/self/uid_map")
		if !regexp.MustCompile(`(?m)^\s*0\s+` + strconv.Itoa(os.Getuid()) + `\s+1$`).MatchString(m) {
			t.Errorf("uid_map inside: %s", m)
		}
	}
}

func TestSystemDFPruneReset(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	e.Busybox()
	dangling := strings.TrimPrefix(strings.TrimSpace(e.Must("import", tinyTar(t, e.Dir, "t.tar", "x\n"))), "sha256:")
	out := e.Must("system", "df")
	if !regexp.MustCompile(`Images\s+2\s+0\s+`).MatchString(out) {
		t.Errorf("system df:\n%s", out)
	}
	rows := e.Must("system", "df", "--format", "{{.Type}} {{.TotalCount}}")
	if !strings.Contains(rows, "Images 2") || !strings.Contains(rows, "Containers") {
		t.Errorf("system df --format: %s", rows)
	}
	if v := e.Must("system", "df", "-v"); !strings.Contains(v, "busybox") {
		t.Errorf("system df -v does not list the images: %s", v)
	}
	if out := e.Must("images", "--filter", "dangling=true", "-q", "--no-trunc"); strings.TrimSpace(out) != "sha256:"+dangling {
		t.Errorf("dangling images = %q, want %s", out, dangling)
	}
	// Without -f and with "no" on input: nothing is removed.
	if r := e.RunIn("n\n", "image", "prune"); r.Code != 0 || !strings.Contains(r.Stderr, "Are you sure") {
		t.Errorf("prune without -f: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if len(e.imageIDs()) != 2 {
		t.Fatal("prune answered no removed images")
	}
	out = e.Must("image", "prune", "-f")
	if !strings.Contains(out, "deleted: sha256:"+dangling) || !strings.Contains(out, "Total reclaimed space:") {
		t.Errorf("image prune -f: %s", out)
	}
	if ids := e.imageIDs(); len(ids) != 1 {
		t.Errorf("after prune: %v", ids)
	}
	e.assertConsistent()
	e.Must("image", "prune", "-a", "-f")
	if ids := e.imageIDs(); len(ids) != 0 {
		t.Errorf("after prune -a: %v", ids)
	}
	if n := len(e.layers()); n != 0 {
		t.Errorf("%d layers left after prune -a", n)
	}
	e.Busybox()
	e.Must("system", "prune", "-a", "-f")
	if ids := e.imageIDs(); len(ids) != 0 {
		t.Errorf("after system prune -a: %v", ids)
	}

	// reset: asks first; -f removes the store, files owned by subordinate
	// ids included.
	e.Busybox()
	if r := e.RunIn("no\n", "system", "reset"); r.Code != 0 || len(e.imageIDs()) != 1 {
		t.Errorf("reset answered no: exit %d, images %v", r.Code, e.imageIDs())
	}
	e.Must("system", "reset", "-f")
	if _, err := os.Stat(e.Root); !os.IsNotExist(err) {
		t.Errorf("the store %s is still there after reset -f (%v)", e.Root, err)
	}
	if ids := e.imageIDs(); len(ids) != 0 {
		t.Errorf("images after reset: %v", ids)
	}
}

func TestImagesFlags(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	old := strings.TrimPrefix(strings.TrimSpace(e.Must("import", "--change", "LABEL tier=base", BusyboxTar(t), "busybox:1")), "sha256:")
	e.Must("tag", "busybox:1", "localhost/other:2")
	newer := strings.TrimPrefix(strings.TrimSpace(e.Must("import", "--change", "LABEL tier=app", "--change", `CMD ["sh"]`, tinyTar(t, e.Dir, "t.tar", "x\n"), "app")), "sha256:")

	table := e.Must("images")
	if !regexp.MustCompile(`(?m)^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$`).MatchString(table) {
		t.Errorf("images header:\n%s", table)
	}
	for _, w := range []string{"busybox", "localhost/other", "app", old[:12], newer[:12]} {
		if !strings.Contains(table, w) {
			t.Errorf("images does not show %s:\n%s", w, table)
		}
	}
	// -q: one line per image, short IDs; --no-trunc: full IDs.
	q := strings.Fields(e.Must("images", "-q"))
	if len(q) != 2 || len(q[0]) != 12 {
		t.Errorf("images -q = %v", q)
	}
	if q := strings.Fields(e.Must("images", "-q", "--no-trunc")); len(q) != 2 || len(q[0]) != 71 {
		t.Errorf("images -q --no-trunc = %v", q)
	}
	if a := strings.Fields(e.Must("images", "-a", "-q")); len(a) != 2 {
		t.Errorf("images -a -q = %v", a)
	}
	d := e.Must("images", "--digests")
	if !strings.Contains(d, "DIGEST") || !strings.Contains(d, "sha256:") {
		t.Errorf("images --digests:\n%s", d)
	}
	if got := e.Must("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(got, "busybox:1\n") || !strings.Contains(got, "other:2\n") {
		t.Errorf("images --format template = %q", got)
	}
	if got := e.Must("images", "--format", "table {{.Repository}}\t{{.Tag}}"); !strings.HasPrefix(got, "REPOSITORY") && !strings.Contains(got, "busybox") {
		t.Errorf("images --format table = %q", got)
	}
	lines := strings.Split(strings.TrimSpace(e.Must("images", "--format", "json")), "\n")
	if len(lines) != 3 {
		t.Errorf("images --format json: %d lines, want 3 (one per name)", len(lines))
	}
	for _, l := range lines {
		var row map[string]any
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("images --format json line %q: %v", l, err)
		}
		for _, k := range []string{"ID", "Repository", "Tag", "Digest", "CreatedSince", "CreatedAt", "Size"} {
			if _, ok := row[k]; !ok {
				t.Errorf("json row has no %s: %v", k, row)
			}
		}
	}
	// Filters and the positional reference.
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--filter", "label=tier=app"}, []string{"app"}},
		{[]string{"--filter", "label=tier"}, []string{"app", "busybox", "localhost/other"}},
		{[]string{"--filter", "reference=busybox"}, []string{"busybox"}},
		{[]string{"--filter", "reference=localhost/*"}, []string{"localhost/other"}},
		{[]string{"--filter", "dangling=false"}, []string{"app", "busybox", "localhost/other"}},
		{[]string{"--filter", "dangling=true"}, nil},
		{[]string{"--filter", "since=busybox:1"}, []string{"app"}},
		{[]string{"--filter", "before=app"}, []string{"busybox", "localhost/other"}},
		{[]string{"busybox"}, []string{"busybox"}},
		{[]string{"busybox:1"}, []string{"busybox"}},
	} {
		// Flags first: the command line stops parsing flags at the
		// first argument.
		out := e.Must(append([]string{"images", "--format", "{{.Repository}}"}, tc.args...)...)
		got := strings.Fields(out)
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("images %v = %v, want %v", tc.args, got, tc.want)
		}
	}
	for _, bad := range []string{"nosuch=1", "dangling=maybe", "novalue"} {
		if r := e.Run("images", "--filter", bad); r.Code != 125 || !strings.Contains(r.Stderr, strings.Split(bad, "=")[0]) {
			t.Errorf("images --filter %s: exit %d, stderr %q", bad, r.Code, r.Stderr)
		}
	}
	if r := e.Run("images", "--format", "{{.Nope"); r.Code != 125 || !strings.Contains(r.Stderr, "template") {
		t.Errorf("bad template: exit %d, stderr %q", r.Code, r.Stderr)
	}
	// inspect --format over several images, and the docker field names.
	got := e.Must("image", "inspect", "--format", "{{.Id}} {{index .Config.Labels \"tier\"}} {{.Os}}", "app", "busybox:1")
	if !strings.Contains(got, "sha256:"+newer+" app linux") || !strings.Contains(got, "sha256:"+old+" base linux") {
		t.Errorf("inspect --format: %q", got)
	}
	var docs []map[string]any
	if err := json.Unmarshal([]byte(e.Must("image", "inspect", "app")), &docs); err != nil || len(docs) != 1 {
		t.Fatalf("inspect json: %v", err)
	}
	for _, k := range []string{"Id", "RepoTags", "RepoDigests", "Created", "Config", "Architecture", "Os", "Size", "RootFS", "GraphDriver"} {
		if _, ok := docs[0][k]; !ok {
			t.Errorf("inspect has no %s", k)
		}
	}
}

func TestGlobalStoreFlags(t *testing.T) {
	t.Parallel()
	e := NewEnv(t)
	// NOOK_ROOT (set by NewEnv) is the store.
	if got := strings.TrimSpace(e.Must("info", "--format", "{{.Store.Root}}")); got != e.Root {
		t.Errorf("NOOK_ROOT: store root %s, want %s", got, e.Root)
	}
	// --root, --runroot and --storage-driver vfs override it.
	root := filepath.Join(e.Dir, "vfsroot")
	runroot := filepath.Join(e.Dir, "vfsrun")
	g := []string{"--root", root, "--runroot", runroot, "--storage-driver", "vfs"}
	e.Must(append(g, "import", BusyboxTar(t), "vfsbox")...)
	got := strings.TrimSpace(e.Must(append(g, "info", "--format", "{{.Store.Root}} {{.Store.RunRoot}} {{.Store.Driver}} {{.Store.Images}}")...))
	if got != root+" "+runroot+" vfs 1" {
		t.Errorf("info with --root/--runroot/--storage-driver = %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "vfs-layers")); err != nil {
		t.Errorf("no vfs layers in %s: %v", root, err)
	}
	// The driver sticks to the root: later commands need no flag.
	if got := strings.TrimSpace(e.Must("--root", root, "--runroot", runroot, "info", "--format", "{{.Store.Driver}}")); got != "vfs" {
		t.Errorf("driver of an existing vfs root = %q", got)
	}
	if got := strings.TrimSpace(e.Must("--root", root, "images", "--format", "{{.Repository}}")); got != "vfsbox" {
		t.Errorf("images of the vfs root = %q", got)
	}
	// The env's own store is untouched.
	if ids := e.imageIDs(); len(ids) != 0 {
		t.Errorf("the NOOK_ROOT store has images %v", ids)
	}
	// Asking for another driver on an existing root is a clear error.
	r := e.Run("--root", root, "--storage-driver", "overlay", "images")
	if r.Code == 0 {
		t.Errorf("overlay over a vfs root succeeded")
	} else if !strings.Contains(r.Stderr, root) {
		t.Errorf("the error does not name the store: %q", r.Stderr)
	}
	e.Must("--root", root, "--runroot", runroot, "system", "reset", "-f")
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("reset --root left %s", root)
	}
}
