package store

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
)

// Layer is a stored layer as image records need it.
type Layer struct {
	ID     string
	DiffID digest.Digest // sha256 of the uncompressed tar
	Size   int64         // uncompressed tar size
}

// PutLayer stores a layer from a tar stream (plain, gzip, bzip2, xz or
// zstd) on top of parent ("" for a base layer). The tar is unpacked inside a
// chroot of the layer directory: entries with "..", absolute symlinks and
// hard links cannot reach outside it. A failed or interrupted put leaves no
// layer behind.
//
// Until an image records it, the layer carries a pending name that says
// which invocation stores it (see pendingName), so that a prune can remove
// the layer at once if that invocation was killed before recording its
// image, and leaves it alone while that invocation lives.
//
// When diff can be read again (a file at offset 0), a put that fails on a
// vanished staging directory is retried: containers/storage's stale
// temp-dir recovery, which every invocation runs when it loads the store,
// can remove another invocation's staging directory in the instant it is
// being created (seen with eight concurrent imports).
func (s *Store) PutLayer(parent string, diff io.Reader) (*Layer, error) {
	seeker, rewindable := diff.(io.Seeker)
	if rewindable {
		if off, err := seeker.Seek(0, io.SeekCurrent); err != nil || off != 0 {
			rewindable = false
		}
	}
	for attempt := 1; ; attempt++ {
		l, _, err := s.s.PutLayer("", parent, []string{pendingName()}, "", false, nil, diff)
		if err == nil {
			return &Layer{ID: l.ID, DiffID: l.UncompressedDigest, Size: l.UncompressedSize}, nil
		}
		if !rewindable || attempt == 3 || !stagingVanished(err) {
			return nil, fmt.Errorf("storing layer: %w", err)
		}
		if _, serr := seeker.Seek(0, io.SeekStart); serr != nil {
			return nil, fmt.Errorf("storing layer: %w", err)
		}
	}
}

// stagingVanished recognises a put that failed because its staging
// directory disappeared under it (see PutLayer).
func stagingVanished(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "no such file or directory") &&
		(strings.Contains(msg, "temp-dir-") || strings.Contains(msg, "unpacking failed"))
}

// pendingPrefix starts the name of a layer no image records yet.
const pendingPrefix = "nook-pending-"

var pendingSeq atomic.Uint64

// pendingName is "nook-pending-PID-START-N": this process's pid and start
// time (so that a reused pid is not taken for it) and a counter.
func pendingName() string {
	pid := os.Getpid()
	return fmt.Sprintf("%s%d-%d-%d", pendingPrefix, pid, procStart(pid), pendingSeq.Add(1))
}

// procStart is a process's start time in clock ticks since boot (field 22
// of /proc/PID/stat), or 0 if it does not exist.
func procStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// pendingState tells, from a layer's names, whether the invocation that
// stores it is still alive. pending is false for a layer with no pending
// name.
func pendingState(names []string) (pending, alive bool) {
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, pendingPrefix)
		if !ok {
			continue
		}
		f := strings.Split(rest, "-")
		if len(f) != 3 {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		start, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		return true, pid > 0 && procStart(pid) == start
	}
	return false, false
}

// clearPending drops the pending names of the layers from top down, now
// that an image records them. It is best effort: a stale pending name on a
// layer that an image uses does no harm.
func (s *Store) clearPending(top string) {
	for id := top; id != ""; {
		l, err := s.s.Layer(id)
		if err != nil {
			return
		}
		var pending []string
		for _, n := range l.Names {
			if strings.HasPrefix(n, pendingPrefix) {
				pending = append(pending, n)
			}
		}
		if len(pending) > 0 {
			_ = s.s.RemoveNames(id, pending)
		}
		id = l.Parent
	}
}

// DeleteLayer removes a layer no image uses (cleanup after a failed step).
func (s *Store) DeleteLayer(id string) error { return s.s.DeleteLayer(id) }

// LayerChain is the layers of an image, base first.
func (s *Store) LayerChain(top string) ([]*storage.Layer, error) {
	var chain []*storage.Layer
	for id := top; id != ""; {
		l, err := s.s.Layer(id)
		if err != nil {
			return nil, fmt.Errorf("reading layer %s: %w", ShortID(id), err)
		}
		chain = append([]*storage.Layer{l}, chain...)
		id = l.Parent
	}
	return chain, nil
}

// LayerDiff streams a layer's uncompressed tar.
func (s *Store) LayerDiff(id string) (io.ReadCloser, error) {
	l, err := s.s.Layer(id)
	if err != nil {
		return nil, fmt.Errorf("reading layer %s: %w", ShortID(id), err)
	}
	// Without an explicit compression, storage returns the diff as it was
	// stored (gzip for a layer put from a .tar.gz).
	unc := archive.Uncompressed
	return s.s.Diff(l.Parent, id, &storage.DiffOptions{Compression: &unc})
}
