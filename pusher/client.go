package pusher

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// Options tune pulls and pushes. The zero value works: host platform,
// TLS verified, credentials from the usual files, 3 jobs, 3 retries.
type Options struct {
	// Platform picks an image from a multi-platform index:
	// "os/arch[/variant]"; empty for the host's.
	Platform string
	// Insecure allows plain HTTP and unverified certificates for every
	// registry (--tls-verify=false). Registries marked insecure in
	// registries.conf are insecure regardless.
	Insecure bool
	// AuthFile is the credentials file to read first (and the one login
	// writes); empty for the default (see DefaultAuthFile).
	AuthFile string
	// Keychain overrides where credentials come from.
	Keychain authn.Keychain
	// Registries is the registry configuration; nil reads
	// DefaultRegistriesFile.
	Registries *RegistriesConfig
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
	// Jobs is how many blobs move at once; 0 for 3.
	Jobs int
	// Retries is how often a transient failure (connection dropped,
	// 5xx, 429) is retried with back-off; 0 for 3, negative for none.
	Retries int
	// RetryDelay is the first back-off (doubling after each retry); 0 for
	// one second.
	RetryDelay time.Duration
	// MaxManifestSize refuses larger manifests and configs; 0 for 4 MiB.
	MaxManifestSize int64
	// Compression is the layer compression for push: "gzip" (default) or
	// "zstd". When it is empty, blobs the image was pulled with are reused
	// as they are.
	Compression string
	// CompressionLevel is the gzip (1-9) or zstd (1-4) level; 0 for the
	// fastest.
	CompressionLevel int
	// Progress receives per-layer progress; nil for none.
	Progress io.Writer
	// Terminal draws progress in place (Progress is a terminal).
	Terminal bool
	// Quiet suppresses progress.
	Quiet bool
}

func (o *Options) jobs() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return 3
}

func (o *Options) retries() int {
	switch {
	case o.Retries < 0:
		return 0
	case o.Retries == 0:
		return 3
	}
	return o.Retries
}

func (o *Options) retryDelay() time.Duration {
	if o.RetryDelay > 0 {
		return o.RetryDelay
	}
	return time.Second
}

func (o *Options) maxManifest() int64 {
	if o.MaxManifestSize > 0 {
		return o.MaxManifestSize
	}
	return 4 << 20
}

func (o *Options) registries() (*RegistriesConfig, error) {
	if o.Registries != nil {
		return o.Registries, nil
	}
	c, err := LoadRegistriesConfig("")
	if err != nil {
		return nil, err
	}
	o.Registries = c
	return c, nil
}

// AuthRequiredError is a registry that wants credentials nook has none for.
type AuthRequiredError struct{ Registry string }

func (e *AuthRequiredError) Error() string {
	return fmt.Sprintf("authentication required for %s: run nook login %s", e.Registry, e.Registry)
}

// AuthFailedError is a registry that refused the credentials nook sent.
type AuthFailedError struct {
	Registry string
	Denied   bool // authenticated, but not allowed (403)
}

func (e *AuthFailedError) Error() string {
	if e.Denied {
		return fmt.Sprintf("access to %s denied for these credentials: check the repository name and your rights, or run nook login %s", e.Registry, e.Registry)
	}
	return fmt.Sprintf("authentication to %s failed: the registry refused the user name or password (run nook login %s)", e.Registry, e.Registry)
}

// NotFoundError is a manifest the registry does not have.
type NotFoundError struct{ Ref string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s: manifest unknown: the registry has no such image or tag", e.Ref)
}

// DigestMismatchError is content that does not hash to what was promised.
type DigestMismatchError struct {
	What      string
	Want, Got string
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("%s: digest %s does not match the expected %s: the data was corrupted or altered in transit", e.What, e.Got, e.Want)
}

// displayRegistry is the registry name as users write it.
func displayRegistry(r name.Registry) string {
	if r.RegistryStr() == name.DefaultRegistry || r.RegistryStr() == "docker.io" {
		return "docker.io"
	}
	return r.RegistryStr()
}

// client is one pull or push session: transports are made once per
// repository and reused for every request.
type client struct {
	o      *Options
	kc     authn.Keychain
	secure http.RoundTripper
	insec  http.RoundTripper

	mu    sync.Mutex
	repos map[string]*repoClient
}

func newClient(o *Options) *client {
	c := &client{o: o, kc: o.Keychain, repos: map[string]*repoClient{}}
	if c.kc == nil {
		c.kc = Keychain(o.AuthFile)
	}
	if o.Transport != nil {
		c.secure, c.insec = o.Transport, o.Transport
	} else {
		c.secure = baseTransport(false, o.jobs())
		c.insec = baseTransport(true, o.jobs())
	}
	return c
}

func baseTransport(insecure bool, jobs int) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = jobs + 2
	t.DisableCompression = true // blobs are compressed already; keep Content-Length exact
	t.ResponseHeaderTimeout = 2 * time.Minute
	t.WriteBufferSize = 256 << 10
	t.ReadBufferSize = 256 << 10
	if insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --tls-verify=false or insecure = true
	}
	return t
}

// repoClient talks to one repository with the scopes it was made for.
type repoClient struct {
	repo      name.Repository
	http      *http.Client
	anonymous bool
	insecure  bool
	retries   int
	delay     time.Duration
}

// repo returns an authenticated client for repo; push asks for push
// rights, from lists repositories of the same registry to mount from.
func (c *client) repo(ctx context.Context, repo name.Repository, insecure, push bool, from []name.Repository) (*repoClient, error) {
	key := fmt.Sprintf("%s|%v|%v", repo.String(), insecure, push)
	for _, f := range from {
		key += "|" + f.String()
	}
	c.mu.Lock()
	rc, ok := c.repos[key]
	c.mu.Unlock()
	if ok {
		return rc, nil
	}
	auth, err := authn.Resolve(ctx, c.kc, repo)
	if err != nil {
		return nil, fmt.Errorf("reading credentials for %s: %w", displayRegistry(repo.Registry), err)
	}
	anonymous := auth == authn.Anonymous
	scopes := []string{repo.Scope(transport.PullScope)}
	if push {
		scopes = []string{repo.Scope(transport.PushScope)}
	}
	for _, f := range from {
		scopes = append(scopes, f.Scope(transport.PullScope))
	}
	base := c.secure
	if insecure {
		base = c.insec
	}
	var tr http.RoundTripper
	err = retry(ctx, c.o.retries(), c.o.retryDelay(), func() error {
		var err error
		tr, err = transport.NewWithContext(ctx, repo.Registry, auth, base, scopes)
		return err
	})
	if err != nil {
		return nil, authError(err, repo.Registry, anonymous, fmt.Sprintf("connecting to %s", displayRegistry(repo.Registry)))
	}
	rc = &repoClient{
		repo:      repo,
		http:      &http.Client{Transport: tr, CheckRedirect: checkRedirect},
		anonymous: anonymous,
		insecure:  insecure,
		retries:   c.o.retries(),
		delay:     c.o.retryDelay(),
	}
	c.mu.Lock()
	c.repos[key] = rc
	c.mu.Unlock()
	return rc, nil
}

// checkRedirect follows at most 10 redirects and never from a registry to
// a private or link-local address it did not start at.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("stopped after %d redirects (a redirect loop?)", len(via))
	}
	orig := via[0].URL.Hostname()
	dest := req.URL.Hostname()
	if dest == orig {
		return nil
	}
	if a, err := netip.ParseAddr(dest); err == nil {
		oa, oerr := netip.ParseAddr(orig)
		origPrivate := oerr == nil && (oa.IsPrivate() || oa.IsLoopback())
		if !origPrivate && (a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified()) {
			return fmt.Errorf("refusing a redirect from %s to the private address %s", orig, dest)
		}
	}
	return nil
}

// authError turns a 401/403 into the message users act on.
func authError(err error, reg name.Registry, anonymous bool, doing string) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized:
			if anonymous {
				return &AuthRequiredError{Registry: displayRegistry(reg)}
			}
			return &AuthFailedError{Registry: displayRegistry(reg)}
		case http.StatusForbidden:
			if anonymous {
				return &AuthRequiredError{Registry: displayRegistry(reg)}
			}
			return &AuthFailedError{Registry: displayRegistry(reg), Denied: true}
		}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func (rc *repoClient) url(kind, id string) string {
	u := url.URL{
		Scheme: rc.repo.Scheme(),
		Host:   rc.repo.RegistryStr(),
		Path:   fmt.Sprintf("/v2/%s/%s/%s", rc.repo.RepositoryStr(), kind, id),
	}
	return u.String()
}

// check maps a response that is not one of codes to an error.
func (rc *repoClient) check(resp *http.Response, doing string, codes ...int) error {
	err := transport.CheckError(resp, codes...)
	if err == nil {
		return nil
	}
	return authError(err, rc.repo.Registry, rc.anonymous, doing)
}

var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex),
	string(types.OCIManifestSchema1),
	string(types.DockerManifestList),
	string(types.DockerManifestSchema2),
}, ",")

// manifest fetches a manifest (or index), refusing more than limit bytes,
// and checks its digest: against the reference when pulling by digest,
// against the registry's Docker-Content-Digest header otherwise.
func (rc *repoClient) manifest(ctx context.Context, ref name.Reference, limit int64) ([]byte, types.MediaType, digest.Digest, error) {
	var (
		body []byte
		mt   types.MediaType
		hdr  string
	)
	doing := fmt.Sprintf("fetching the manifest of %s", ref)
	err := retry(ctx, rc.retries, rc.delay, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rc.url("manifests", ref.Identifier()), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", manifestAccept)
		resp, err := rc.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return permanent(&NotFoundError{Ref: ref.String()})
		}
		if err := rc.check(resp, doing, http.StatusOK); err != nil {
			return err
		}
		if resp.ContentLength > limit {
			return permanent(fmt.Errorf("%s: the registry announced %d bytes, more than the %d-byte limit for a manifest", doing, resp.ContentLength, limit))
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return err
		}
		if int64(len(body)) > limit {
			return permanent(fmt.Errorf("%s: manifest larger than the %d-byte limit", doing, limit))
		}
		if resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
			return io.ErrUnexpectedEOF
		}
		mt = types.MediaType(resp.Header.Get("Content-Type"))
		hdr = resp.Header.Get("Docker-Content-Digest")
		return nil
	})
	if err != nil {
		var p *permanentError
		if errors.As(err, &p) {
			err = p.err
		}
		var nf *NotFoundError
		var are *AuthRequiredError
		var afe *AuthFailedError
		if errors.As(err, &nf) || errors.As(err, &are) || errors.As(err, &afe) || strings.HasPrefix(err.Error(), doing) {
			return nil, "", "", err
		}
		return nil, "", "", fmt.Errorf("%s: %w", doing, err)
	}
	got := digest.FromBytes(body)
	if d, ok := ref.(name.Digest); ok {
		if got.String() != d.DigestStr() {
			return nil, "", "", &DigestMismatchError{What: "manifest of " + ref.String(), Want: d.DigestStr(), Got: got.String()}
		}
	} else if want, err := digest.Parse(hdr); err == nil && want.Algorithm() == digest.SHA256 && want != got {
		return nil, "", "", &DigestMismatchError{What: "manifest of " + ref.String(), Want: want.String(), Got: got.String()}
	}
	if mt == "" || mt == "application/json" || mt == "text/plain" {
		mt = sniffMediaType(body)
	}
	return body, mt, got, nil
}

// sniffMediaType reads mediaType from a manifest served without a useful
// Content-Type.
func sniffMediaType(b []byte) types.MediaType {
	var m struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return ""
	}
	if m.MediaType != "" {
		return types.MediaType(m.MediaType)
	}
	if len(m.Manifests) > 0 {
		return types.OCIImageIndex
	}
	return types.OCIManifestSchema1
}

// smallBlob fetches a blob of at most limit bytes (a config) and verifies
// its digest.
func (rc *repoClient) smallBlob(ctx context.Context, desc v1.Descriptor, limit int64, what string) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d-byte limit", what, desc.Size, limit)
	}
	r := rc.blob(ctx, desc)
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", what, err)
	}
	if got := digest.FromBytes(b); got.String() != desc.Digest.String() {
		return nil, &DigestMismatchError{What: what, Want: desc.Digest.String(), Got: got.String()}
	}
	return b, nil
}

// blob returns the bytes of a blob: exactly desc.Size of them, resuming
// with a Range request after a dropped connection (or re-reading and
// skipping when the registry ignores ranges). The caller verifies the
// digest.
func (rc *repoClient) blob(ctx context.Context, desc v1.Descriptor) io.ReadCloser {
	return &blobReader{ctx: ctx, rc: rc, desc: desc, left: rc.retries, delay: rc.delay}
}

type blobReader struct {
	ctx   context.Context
	rc    *repoClient
	desc  v1.Descriptor
	body  io.ReadCloser
	off   int64
	left  int
	delay time.Duration
	err   error
}

func (b *blobReader) what() string { return "blob " + b.desc.Digest.String() }

func (b *blobReader) open() error {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.rc.url("blobs", b.desc.Digest.String()), nil)
	if err != nil {
		return err
	}
	if b.off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", b.off, b.desc.Size-1))
	}
	resp, err := b.rc.http.Do(req)
	if err != nil {
		return err
	}
	switch {
	case b.off > 0 && resp.StatusCode == http.StatusPartialContent:
		var start int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != b.off {
			resp.Body.Close()
			return permanent(fmt.Errorf("fetching %s: the registry answered a range request from byte %d with %q", b.what(), b.off, resp.Header.Get("Content-Range")))
		}
	case resp.StatusCode == http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != b.desc.Size {
			resp.Body.Close()
			return permanent(fmt.Errorf("fetching %s: the registry announced %d bytes for a blob of %d bytes", b.what(), resp.ContentLength, b.desc.Size))
		}
		if b.off > 0 {
			// No range support: read again from the start, skip what we
			// have.
			if _, err := io.CopyN(io.Discard, resp.Body, b.off); err != nil {
				resp.Body.Close()
				return err
			}
		}
	default:
		err := b.rc.check(resp, "fetching "+b.what(), http.StatusOK)
		resp.Body.Close()
		if err == nil {
			err = fmt.Errorf("fetching %s: unexpected status %s", b.what(), resp.Status)
		}
		return err
	}
	b.body = resp.Body
	return nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	for {
		if b.body == nil {
			if err := b.open(); err != nil {
				if b.retry(err) {
					continue
				}
				b.err = unwrapPermanent(err)
				return 0, b.err
			}
		}
		if rest := b.desc.Size - b.off; int64(len(p)) > rest+1 {
			p = p[:rest+1]
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		if b.off > b.desc.Size {
			b.err = fmt.Errorf("fetching %s: the registry sent more than the %d bytes of the blob", b.what(), b.desc.Size)
			return 0, b.err
		}
		if err == io.EOF {
			if b.off == b.desc.Size {
				return n, io.EOF
			}
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			b.body.Close()
			b.body = nil
			if n > 0 {
				// Hand over what arrived; the next Read resumes.
				if !isTransient(err) || b.left <= 0 {
					b.err = fmt.Errorf("fetching %s: %w", b.what(), err)
				}
				return n, nil
			}
			if b.retry(err) {
				continue
			}
			b.err = fmt.Errorf("fetching %s: %w", b.what(), err)
			return 0, b.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// retry sleeps and reports whether another try is allowed for err.
func (b *blobReader) retry(err error) bool {
	if !isTransient(err) || b.left <= 0 {
		return false
	}
	b.left--
	select {
	case <-time.After(b.delay):
	case <-b.ctx.Done():
		return false
	}
	b.delay *= 2
	return true
}

func (b *blobReader) Close() error {
	if b.body != nil {
		err := b.body.Close()
		b.body = nil
		return err
	}
	return nil
}

// permanentError stops retries.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

func unwrapPermanent(err error) error {
	var p *permanentError
	if errors.As(err, &p) {
		return p.err
	}
	return err
}

// isTransient reports whether an error may go away when tried again: a
// dropped or refused connection, a timeout, 408, 429 or a 5xx.
func isTransient(err error) bool {
	if err == nil {
		return false
	}
	var p *permanentError
	if errors.As(err, &p) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusRequestTimeout, te.StatusCode == http.StatusTooManyRequests,
			te.StatusCode >= 500:
			return true
		}
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// retry runs fn until it succeeds, fails permanently, or tries run out.
func retry(ctx context.Context, tries int, delay time.Duration, fn func() error) error {
	for {
		err := fn()
		if err == nil || !isTransient(err) || tries <= 0 {
			return err
		}
		tries--
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return err
		}
		delay *= 2
	}
}

// hostPlatform is the platform images run on here.
func hostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	if runtime.GOARCH == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// ParsePlatform reads "os/arch[/variant]" (empty: the host's).
func ParsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return hostPlatform(), nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: %w", s, err)
	}
	if p.OS == "" || p.Architecture == "" || strings.Count(s, "/") < 1 {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: use os/arch[/variant], e.g. linux/arm64", s)
	}
	return *p, nil
}

// platformMatches compares as docker does: the variant only when both
// name one (arm64's v8 is the default).
func platformMatches(want, got v1.Platform) bool {
	if want.OS != got.OS || want.Architecture != got.Architecture {
		return false
	}
	if want.Variant == "" || got.Variant == "" {
		return true
	}
	return want.Variant == got.Variant
}

// tags lists a repository's tags, following the registry's pages.
func (rc *repoClient) tags(ctx context.Context) ([]string, error) {
	var out []string
	next := fmt.Sprintf("%s://%s/v2/%s/tags/list?n=1000", rc.repo.Scheme(), rc.repo.RegistryStr(), rc.repo.RepositoryStr())
	for pages := 0; next != "" && pages < 1000; pages++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		resp, err := rc.http.Do(req)
		if err != nil {
			return nil, err
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		err = rc.check(resp, "listing tags of "+rc.repo.String(), http.StatusOK)
		if err == nil {
			err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&page)
		}
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, page.Tags...)
		next = ""
		if link := resp.Header.Get("Link"); link != "" {
			if s, _, ok := strings.Cut(strings.TrimPrefix(link, "<"), ">"); ok {
				if u, err := resp.Request.URL.Parse(s); err == nil {
					next = u.String()
				}
			}
		}
	}
	return out, nil
}

// CredentialsKeychain answers every registry with one user and password
// (--creds).
func CredentialsKeychain(user, password string) authn.Keychain {
	return staticKeychain{auth: authn.FromConfig(authn.AuthConfig{Username: user, Password: password})}
}

type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }
