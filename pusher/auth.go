package pusher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// AuthFileEnv names a credentials file to use instead of the default, as
// podman's REGISTRY_AUTH_FILE does.
const AuthFileEnv = "REGISTRY_AUTH_FILE"

// dockerHubKey is the key docker uses for Docker Hub in config.json.
const dockerHubKey = "https://index.docker.io/v1/"

// DefaultAuthFile is the file login writes to: explicit if set, else
// $REGISTRY_AUTH_FILE, else docker's $DOCKER_CONFIG/config.json, else
// ~/.docker/config.json. Docker, podman, buildah and skopeo all read it.
func DefaultAuthFile(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if p := os.Getenv(AuthFileEnv); p != "" {
		return p
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/"
	}
	return filepath.Join(home, ".docker", "config.json")
}

// Keychain resolves credentials from, in order: the explicit file (or
// $REGISTRY_AUTH_FILE), docker's config.json (with its credential
// helpers), $XDG_RUNTIME_DIR/containers/auth.json and
// ~/.config/containers/auth.json. The first file with an entry wins.
func Keychain(explicit string) authn.Keychain {
	var files []string
	add := func(p string) {
		for _, f := range files {
			if f == p {
				return
			}
		}
		files = append(files, p)
	}
	add(DefaultAuthFile(explicit))
	if explicit == "" {
		if d := os.Getenv("DOCKER_CONFIG"); d != "" {
			add(filepath.Join(d, "config.json"))
		}
		if home, err := os.UserHomeDir(); err == nil {
			add(filepath.Join(home, ".docker", "config.json"))
		}
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			add(filepath.Join(d, "containers", "auth.json"))
		}
		cfg := os.Getenv("XDG_CONFIG_HOME")
		if cfg == "" {
			if home, err := os.UserHomeDir(); err == nil {
				cfg = filepath.Join(home, ".config")
			}
		}
		if cfg != "" {
			add(filepath.Join(cfg, "containers", "auth.json"))
		}
	}
	var kcs []authn.Keychain
	for _, f := range files {
		kcs = append(kcs, fileKeychain{path: f})
	}
	return authn.NewMultiKeychain(kcs...)
}

// fileKeychain reads one docker-format credentials file (config.json or
// containers' auth.json), credential helpers included.
type fileKeychain struct{ path string }

func (k fileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	cf, err := loadAuthFile(k.path)
	if err != nil || cf == nil {
		return authn.Anonymous, err
	}
	for _, key := range authKeys(target) {
		// Exact keys first (podman files key Docker Hub as docker.io,
		// which docker's lookup rewrites), then docker's lookup with its
		// credential helpers.
		ac, ok := cf.AuthConfigs[key]
		if !ok {
			var err error
			if ac, err = cf.GetAuthConfig(key); err != nil {
				return nil, fmt.Errorf("reading credentials for %s from %s: %w", key, k.path, err)
			}
		}
		if ac.Username == "" && ac.Password == "" && ac.Auth == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
			continue
		}
		return authn.FromConfig(authn.AuthConfig{
			Username:      ac.Username,
			Password:      ac.Password,
			Auth:          ac.Auth,
			IdentityToken: ac.IdentityToken,
			RegistryToken: ac.RegistryToken,
		}), nil
	}
	return authn.Anonymous, nil
}

// authKeys are the keys a target's credentials may be filed under: the
// repository, then the registry (docker's and podman's spellings of Docker
// Hub both).
func authKeys(target authn.Resource) []string {
	reg := target.RegistryStr()
	var keys []string
	if s := target.String(); s != reg {
		keys = append(keys, s)
		if reg == name.DefaultRegistry {
			keys = append(keys, "docker.io"+strings.TrimPrefix(s, reg))
		}
	}
	if reg == name.DefaultRegistry || reg == "docker.io" {
		return append(keys, dockerHubKey, "docker.io", name.DefaultRegistry)
	}
	return append(keys, reg)
}

// loadAuthFile reads a credentials file; a missing file is nil, nil.
func loadAuthFile(path string) (*configfile.ConfigFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading credentials: %w", err)
	}
	defer f.Close()
	cf := configfile.New(path)
	if err := cf.LoadFromReader(f); err != nil {
		return nil, fmt.Errorf("reading credentials from %s: %w", path, err)
	}
	return cf, nil
}

// LoginOptions say where to log in and with what.
type LoginOptions struct {
	Registry string // host[:port]; empty for docker.io
	Username string
	Password string
	AuthFile string // empty: DefaultAuthFile
	Insecure bool   // plain HTTP or unverified TLS allowed
	// Registries marks registries insecure; nil reads the default file.
	Registries *RegistriesConfig
	Transport  http.RoundTripper // tests
}

// NormalizeRegistry turns what a user gives login ("docker.io",
// "https://index.docker.io/v1/", "localhost:5000") into a registry host.
func NormalizeRegistry(s string) (string, error) {
	if s == "" {
		return "docker.io", nil
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	if s == name.DefaultRegistry || s == "registry-1.docker.io" {
		s = "docker.io"
	}
	if _, err := name.NewRegistry(s, name.StrictValidation); err != nil {
		return "", fmt.Errorf("invalid registry %q: %w", s, err)
	}
	return s, nil
}

func authFileKey(reg string) string {
	if reg == "docker.io" {
		return dockerHubKey
	}
	return reg
}

// Login checks the credentials against the registry and, when it accepts
// them, stores them (mode 0600). It never prints or logs them.
func Login(ctx context.Context, o LoginOptions) (string, error) {
	host, err := NormalizeRegistry(o.Registry)
	if err != nil {
		return "", err
	}
	if o.Username == "" || o.Password == "" {
		return "", errors.New("login needs a user name and a password")
	}
	rcfg := o.Registries
	if rcfg == nil {
		if rcfg, err = LoadRegistriesConfig(""); err != nil {
			return "", err
		}
	}
	insecure := o.Insecure || rcfg.insecureRegistry(host)
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, nopts...)
	if err != nil {
		return "", fmt.Errorf("invalid registry %q: %w", host, err)
	}
	base := o.Transport
	if base == nil {
		base = baseTransport(insecure, 1)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: o.Username, Password: o.Password})
	tr, err := transport.NewWithContext(ctx, reg, auth, base, nil)
	if err != nil {
		return "", authError(err, reg, false, "logging in to "+host)
	}
	// A registry with basic authentication only says no on a request.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr, CheckRedirect: checkRedirect}).Do(req)
	if err != nil {
		return "", fmt.Errorf("logging in to %s: %w", host, err)
	}
	err = transport.CheckError(resp, http.StatusOK)
	resp.Body.Close()
	if err != nil {
		return "", authError(err, reg, false, "logging in to "+host)
	}

	path := DefaultAuthFile(o.AuthFile)
	cf, err := loadAuthFile(path)
	if err != nil {
		return "", err
	}
	if cf == nil {
		cf = configfile.New(path)
	}
	key := authFileKey(host)
	ac := types.AuthConfig{Username: o.Username, Password: o.Password, ServerAddress: key}
	if hasHelper(cf, key) {
		if err := cf.GetCredentialsStore(key).Store(ac); err != nil {
			return "", fmt.Errorf("storing the credentials for %s: %w", host, err)
		}
	} else {
		// In the file itself (Save encodes them as docker does).
		cf.GetAuthConfigs()[key] = ac
	}
	if err := saveAuthFile(cf); err != nil {
		return "", err
	}
	return path, nil
}

func saveAuthFile(cf *configfile.ConfigFile) error {
	if err := os.MkdirAll(filepath.Dir(cf.Filename), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(cf.Filename), err)
	}
	if err := cf.Save(); err != nil {
		return fmt.Errorf("writing %s: %w", cf.Filename, err)
	}
	// Save keeps the mode of an existing file; credentials are the user's
	// only.
	if err := os.Chmod(cf.Filename, 0o600); err != nil {
		return fmt.Errorf("protecting %s: %w", cf.Filename, err)
	}
	return nil
}

// NotLoggedInError is a logout from a registry with no stored credentials.
type NotLoggedInError struct{ Registry, File string }

func (e *NotLoggedInError) Error() string {
	return fmt.Sprintf("not logged in to %s (no credentials in %s)", e.Registry, e.File)
}

// Logout removes the stored credentials of a registry.
func Logout(registry, authFile string) (string, error) {
	host, err := NormalizeRegistry(registry)
	if err != nil {
		return "", err
	}
	path := DefaultAuthFile(authFile)
	cf, err := loadAuthFile(path)
	if err != nil {
		return "", err
	}
	if cf == nil {
		return "", &NotLoggedInError{Registry: host, File: path}
	}
	found := false
	for _, key := range []string{authFileKey(host), host, "https://" + host, "http://" + host} {
		if _, ok := cf.AuthConfigs[key]; ok {
			found = true
			delete(cf.AuthConfigs, key)
		}
	}
	if hasHelper(cf, authFileKey(host)) {
		store := cf.GetCredentialsStore(authFileKey(host))
		if ac, err := store.Get(authFileKey(host)); err == nil && (ac.Username != "" || ac.Password != "") {
			found = true
			if err := store.Erase(authFileKey(host)); err != nil {
				return "", fmt.Errorf("removing the credentials for %s: %w", host, err)
			}
		}
	}
	if !found {
		return "", &NotLoggedInError{Registry: host, File: path}
	}
	if err := saveAuthFile(cf); err != nil {
		return "", err
	}
	return path, nil
}

// hasHelper reports whether a credential helper keeps key's credentials.
func hasHelper(cf *configfile.ConfigFile, key string) bool {
	return cf.CredentialsStore != "" || cf.CredentialHelpers[key] != ""
}
