package pusher

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"

	"github.com/nook-containers/nook/store"
)

// layerSource is one layer to store: its blob (compressed or not) and the
// digests it must have.
type layerSource struct {
	// blob is the digest and size of the bytes open returns; an empty
	// digest is not checked (a docker-archive's layer.tar), a negative
	// size is unknown.
	blob     digest.Digest
	blobSize int64
	diffID   digest.Digest
	open     func(ctx context.Context) (io.ReadCloser, error)
}

// chainID is the OCI chain ID of a layer on top of a parent chain ID.
func chainID(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	return digest.FromString(parent.String() + " " + diffID.String())
}

// findLayer returns a stored layer with this diff ID over parent.
func findLayer(st storage.Store, parent string, diffID digest.Digest) *storage.Layer {
	ls, err := st.LayersByUncompressedDigest(diffID)
	if err != nil {
		return nil
	}
	for i := range ls {
		if ls[i].Parent == parent {
			return &ls[i]
		}
	}
	return nil
}

// layerState tracks one missing layer between its download and its
// application.
type layerState struct {
	src   layerSource
	bar   *bar
	mu    sync.Mutex
	taken bool // a prefetcher or the applier owns it
	file  string
	err   error
	done  chan struct{}
}

// storeLayers stores the layers of a chain (base first) that the store
// lacks and returns the top layer's ID. Layers are applied in order while
// up to jobs-1 later ones are prefetched to temporary files; the next layer
// to apply streams straight from its source. Every layer is decompressed
// once and its digests verified before the store commits it.
func storeLayers(ctx context.Context, s *store.Store, srcs []layerSource, jobs int, prog *progress) (string, error) {
	st := s.Storage()
	parent := ""
	var chain digest.Digest
	i := 0
	for ; i < len(srcs); i++ {
		l := findLayer(st, parent, srcs[i].diffID)
		if l == nil {
			break
		}
		prog.bar(srcs[i].blobOrDiff(), srcs[i].blobSize).set("Already exists")
		parent = l.ID
		chain = chainID(chain, srcs[i].diffID)
	}
	if i == len(srcs) {
		return parent, nil
	}
	states := make([]*layerState, len(srcs)-i)
	for k := range states {
		src := srcs[i+k]
		states[k] = &layerState{src: src, bar: prog.bar(src.blobOrDiff(), src.blobSize), done: make(chan struct{})}
	}
	tmp := tmpDir(s)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		for _, ls := range states {
			if ls.file != "" {
				os.Remove(ls.file)
			}
		}
	}()
	next := make(chan struct{}, len(states))
	for k := 1; k < len(states); k++ {
		next <- struct{}{}
	}
	close(next)
	for w := 0; w < jobs-1 && w < len(states)-1; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				// Take the lowest-numbered layer nobody owns yet.
				var ls *layerState
				for _, c := range states[1:] {
					c.mu.Lock()
					if !c.taken {
						c.taken = true
						ls = c
					}
					c.mu.Unlock()
					if ls != nil {
						break
					}
				}
				if ls == nil || ctx.Err() != nil {
					return
				}
				ls.file, ls.err = prefetch(ctx, tmp, ls)
				close(ls.done)
			}
		}()
	}
	for _, ls := range states {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		diff := ls.src.diffID
		id := chainID(chain, diff)
		if l := findLayer(st, parent, diff); l != nil {
			// Stored meanwhile by a concurrent pull.
			ls.bar.set("Already exists")
			parent, chain = l.ID, id
			continue
		}
		ls.mu.Lock()
		mine := !ls.taken
		ls.taken = true
		ls.mu.Unlock()
		var (
			l   *storage.Layer
			err error
		)
		if mine {
			ls.bar.set("Downloading")
			var rc io.ReadCloser
			rc, err = ls.src.open(ctx)
			if err == nil {
				l, err = putLayer(st, parent, id.Encoded(), ls.src, ls.bar.reader(rc), true)
				rc.Close()
			}
		} else {
			select {
			case <-ls.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			err = ls.err
			if err == nil {
				ls.bar.set("Extracting")
				var f *os.File
				f, err = os.Open(ls.file)
				if err == nil {
					l, err = putLayer(st, parent, id.Encoded(), ls.src, f, false)
					f.Close()
				}
				os.Remove(ls.file)
			}
		}
		if err != nil {
			ls.bar.set("Failed")
			return "", fmt.Errorf("storing layer %s: %w", ls.src.blobOrDiff(), err)
		}
		ls.bar.set("Pull complete")
		parent, chain = l.ID, id
	}
	return parent, nil
}

func (s layerSource) blobOrDiff() string {
	if s.blob != "" {
		return s.blob.String()
	}
	return s.diffID.String()
}

// prefetch downloads a layer's blob to a temporary file, verifying its
// digest and size.
func prefetch(ctx context.Context, dir string, ls *layerState) (string, error) {
	ls.bar.set("Downloading")
	rc, err := ls.src.open(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, fmt.Sprintf("layer-%d-", os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("creating a download file: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ls.bar.reader(rc))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = checkBlob(ls.src, n, digest.NewDigest(digest.SHA256, h))
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	ls.bar.set("Download complete")
	return f.Name(), nil
}

func checkBlob(src layerSource, n int64, got digest.Digest) error {
	if src.blobSize >= 0 && n != src.blobSize {
		return fmt.Errorf("blob %s: got %d bytes, want %d", src.blob, n, src.blobSize)
	}
	if src.blob != "" && src.blob.Algorithm() == digest.SHA256 && got != src.blob {
		return &DigestMismatchError{What: "blob", Want: src.blob.String(), Got: got.String()}
	}
	return nil
}

// tmpDir holds downloads in progress, beside the store so that a rename
// or a read stays on one file system. Files of dead processes (kill -9)
// are removed.
func tmpDir(s *store.Store) string {
	dir := filepath.Join(s.Root(), "nook-tmp")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return dir
	}
	for _, e := range ents {
		parts := strings.SplitN(e.Name(), "-", 3)
		if len(parts) < 3 {
			continue
		}
		pid, err := strconv.Atoi(parts[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return dir
}

// putLayer stores one layer from its blob, decompressing it once and
// verifying the blob digest (when verifyBlob) and the diff ID on the way:
// a mismatch fails the read before the store commits, so the store
// removes the layer. A layer another invocation stored meanwhile under the
// same ID is used as it is.
func putLayer(st storage.Store, parent, id string, src layerSource, raw io.Reader, verifyBlob bool) (*storage.Layer, error) {
	v, err := newVerifier(raw, src, verifyBlob)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	opts := &storage.LayerOptions{UncompressedDigest: src.diffID}
	if src.blob != "" && src.blobSize >= 0 {
		size := src.blobSize
		opts.OriginalDigest, opts.OriginalSize = src.blob, &size
	} else {
		// Without a known blob, the diff is its own blob.
		opts.OriginalDigest = src.diffID
	}
	l, _, err := st.PutLayer(id, parent, nil, "", false, opts, v)
	if errors.Is(err, storage.ErrDuplicateID) {
		if ex, lerr := st.Layer(id); lerr == nil && ex.UncompressedDigest == src.diffID && ex.Parent == parent {
			return ex, nil
		}
	}
	if err != nil {
		if v.err != nil {
			return nil, v.err
		}
		return nil, err
	}
	return l, nil
}

// verifier decompresses a blob and hashes both sides; at the end of the
// stream it reports a mismatch instead of io.EOF.
type verifier struct {
	src      layerSource
	raw      *hashCounter // the blob as it arrives
	br       *bufio.Reader
	dec      io.Reader
	closeDec func()
	diff     hash.Hash
	diffN    int64
	err      error
	finished bool
	// hashAhead: the reading goroutine hashes the diff.
	hashAhead bool
}

type hashCounter struct {
	r io.Reader
	h hash.Hash // nil: count only
	n int64
}

func (h *hashCounter) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		h.n += int64(n)
		if h.h != nil {
			h.h.Write(p[:n])
		}
	}
	return n, err
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

func newVerifier(raw io.Reader, src layerSource, verifyBlob bool) (*verifier, error) {
	hc := &hashCounter{r: raw}
	// An uncompressed blob is its own diff: hash it once.
	if verifyBlob && src.blob != "" && src.blob != src.diffID {
		hc.h = sha256.New()
	}
	v := &verifier{src: src, raw: hc, diff: sha256.New(), closeDec: func() {}}
	v.br = bufio.NewReaderSize(hc, 256<<10)
	head, err := v.br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading blob %s: %w", src.blobOrDiff(), err)
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := pgzip.NewReaderN(v.br, 1<<20, 4)
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", src.blobOrDiff(), err)
		}
		v.dec, v.closeDec = zr, func() { zr.Close() }
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(v.br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(1<<31))
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", src.blobOrDiff(), err)
		}
		v.dec, v.closeDec = zr, zr.Close
	default:
		v.dec = v.br
	}
	// Decompression and the diff hash run in their own goroutine, ahead
	// of the store's reader, so that hashing overlaps with unpacking.
	ar := newAheadReader(v.dec, v.diff)
	prev := v.closeDec
	v.dec, v.closeDec = ar, func() { ar.Close(); prev() }
	v.hashAhead = true
	return v, nil
}

// aheadReader reads r in a goroutine, hashing what it reads, and hands the
// chunks over through a small queue.
type aheadReader struct {
	ch   chan []byte
	free chan []byte
	done chan struct{}
	cur  []byte
	buf  []byte
	err  error
	errc chan error
}

func newAheadReader(r io.Reader, h hash.Hash) *aheadReader {
	a := &aheadReader{ch: make(chan []byte, 4), free: make(chan []byte, 6), done: make(chan struct{}), errc: make(chan error, 1)}
	for i := 0; i < 6; i++ {
		a.free <- make([]byte, 256<<10)
	}
	go func() {
		defer close(a.ch)
		for {
			var b []byte
			select {
			case b = <-a.free:
			case <-a.done:
				return
			}
			n, err := io.ReadFull(r, b)
			if n > 0 {
				h.Write(b[:n])
				select {
				case a.ch <- b[:n]:
				case <-a.done:
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					err = io.EOF
				}
				a.errc <- err
				return
			}
		}
	}()
	return a
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)]
			a.buf = nil
		}
		b, ok := <-a.ch
		if !ok {
			if a.err == nil {
				a.err = <-a.errc
			}
			return 0, a.err
		}
		a.cur, a.buf = b, b
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

func (a *aheadReader) Close() {
	select {
	case <-a.done:
	default:
		close(a.done)
	}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.finished {
		return 0, io.EOF
	}
	n, err := v.dec.Read(p)
	if n > 0 {
		if !v.hashAhead {
			v.diff.Write(p[:n])
		}
		v.diffN += int64(n)
	}
	if errors.Is(err, io.EOF) {
		if ferr := v.finish(); ferr != nil {
			v.err = ferr
			return n, ferr
		}
		v.finished = true
		return n, io.EOF
	}
	if err != nil {
		v.err = fmt.Errorf("reading layer %s: %w", v.src.blobOrDiff(), err)
		return n, v.err
	}
	return n, nil
}

// finish drains what the decompressor left of the blob and checks sizes and
// digests.
func (v *verifier) finish() error {
	if _, err := io.Copy(io.Discard, v.br); err != nil {
		return fmt.Errorf("reading blob %s: %w", v.src.blobOrDiff(), err)
	}
	if v.raw.h != nil || v.src.blob == v.src.diffID {
		got := v.diffDigest()
		if v.raw.h != nil {
			got = digest.NewDigest(digest.SHA256, v.raw.h)
		}
		if err := checkBlob(v.src, v.raw.n, got); err != nil {
			return err
		}
	} else if v.src.blobSize >= 0 && v.raw.n != v.src.blobSize && v.src.blob != "" {
		return fmt.Errorf("blob %s: got %d bytes, want %d", v.src.blob, v.raw.n, v.src.blobSize)
	}
	if got := v.diffDigest(); got != v.src.diffID {
		return &DigestMismatchError{What: "layer diff (uncompressed " + v.src.blobOrDiff() + ")", Want: v.src.diffID.String(), Got: got.String()}
	}
	return nil
}

func (v *verifier) diffDigest() digest.Digest { return digest.NewDigest(digest.SHA256, v.diff) }

func (v *verifier) Close() { v.closeDec() }
