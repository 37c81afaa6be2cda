package pusher

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestLoginLogout(t *testing.T) {
	rs := newRegistry(t)
	basicAuth(rs, "me", "pw-right")
	file := filepath.Join(t.TempDir(), "dir", "auth.json")
	o := LoginOptions{Registry: rs.host, Username: "me", Password: "pw-wrong", AuthFile: file, Registries: &RegistriesConfig{}}
	_, err := Login(ctxT(t), o)
	var afe *AuthFailedError
	if !errors.As(err, &afe) || strings.Contains(err.Error(), "pw-wrong") {
		t.Fatalf("wrong password: err = %v", err)
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("a refused login wrote the file")
	}
	o.Password = "pw-right"
	if _, err := Login(ctxT(t), o); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth file %v mode %v", err, fi.Mode())
	}
	// The keychain finds the credentials, and a pull works with them.
	repo, _ := name.NewRepository(rs.ref("a/b"))
	auth, err := authn.Resolve(ctxT(t), Keychain(file), repo)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := auth.Authorization()
	if cfg.Username != "me" || cfg.Password != "pw-right" {
		t.Fatalf("keychain gave %q", cfg.Username)
	}
	if _, err := Logout(rs.host, file); err != nil {
		t.Fatal(err)
	}
	var nli *NotLoggedInError
	if _, err := Logout(rs.host, file); !errors.As(err, &nli) {
		t.Fatalf("second logout: %v", err)
	}
	if auth, _ := authn.Resolve(ctxT(t), Keychain(file), repo); auth != authn.Anonymous {
		t.Fatal("credentials left after logout")
	}
}

func TestKeychainReadsContainersAuthJSON(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv(AuthFileEnv, "")
	run := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", run)
	os.MkdirAll(filepath.Join(run, "containers"), 0o700)
	// podman's file, with docker.io spelled its way.
	os.WriteFile(filepath.Join(run, "containers", "auth.json"), []byte(`{"auths":{"docker.io":{"auth":"dXNlcjpwYXNz"},"quay.io":{"auth":"cTpx"}}}`), 0o600)
	for _, c := range []struct{ ref, user string }{{"busybox", "user"}, {"quay.io/a/b", "q"}} {
		repo, err := name.NewRepository(c.ref)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := authn.Resolve(ctxT(t), Keychain(""), repo)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := auth.Authorization()
		if cfg.Username != c.user {
			t.Fatalf("%s: user %q, want %q", c.ref, cfg.Username, c.user)
		}
	}
}

func TestNormalizeRegistry(t *testing.T) {
	for in, want := range map[string]string{"": "docker.io", "https://index.docker.io/v1/": "docker.io", "localhost:5000": "localhost:5000", "http://r.example.com/x": "r.example.com"} {
		if got, err := NormalizeRegistry(in); err != nil || got != want {
			t.Errorf("NormalizeRegistry(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
