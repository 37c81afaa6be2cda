package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// source is a tree files are copied from: the build context (with its
// .dockerignore) or the root filesystem of a stage or image.
type source struct {
	root    string // absolute directory
	ignore  *patternmatcher.PatternMatcher
	context bool // the build context: files become root-owned
}

// loadIgnore reads <Dockerfile>.dockerignore beside the Dockerfile, else
// .dockerignore at the context root, as docker does.
func loadIgnore(contextDir, dockerfilePath string) (*patternmatcher.PatternMatcher, error) {
	var candidates []string
	if dockerfilePath != "" {
		candidates = append(candidates, dockerfilePath+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(contextDir, ".dockerignore"))
	for _, c := range candidates {
		f, err := os.Open(c)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", c, err)
		}
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", c, err)
		}
		if len(patterns) == 0 {
			return nil, nil
		}
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		return pm, nil
	}
	return nil, nil
}

func (s *source) ignored(rel string) bool {
	if s.ignore == nil || rel == "." || rel == "" {
		return false
	}
	m, err := s.ignore.MatchesOrParentMatches(rel)
	return err == nil && m
}

// entry is one file selected for a copy.
type entry struct {
	abs  string      // path on this machine
	rel  string      // destination path relative to the copy's target ("" = the target itself)
	info fs.FileInfo // lstat
	// remote marks a file downloaded for ADD URL: never unpacked.
	remote bool
}

// selection is what one source argument selected.
type selection struct {
	src     *source
	entries []entry
	// dirContents is set when the source was a directory: its contents go
	// into the destination directory.
	dirContents bool
	name        string // base name of a single file source
	rel         string // the source's path relative to its root (COPY --parents)
}

// NotFoundError is a COPY source that does not exist (or is excluded).
type NotFoundError struct{ Path string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%q: not found in the build context or excluded by .dockerignore", e.Path)
}

func hasWildcard(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[':
			return true
		case '\\':
			i++
		}
	}
	return false
}

// resolve finds a source path inside the root: symlinks on the way
// (including the last component, as docker follows it) resolve within
// the root, never outside it.
func (s *source) resolve(rel string) (string, error) {
	return securejoin.SecureJoin(s.root, rel)
}

// selectSource expands one COPY source (wildcards allowed) into entries.
func (s *source) selectSource(src string) ([]selection, error) {
	clean := path.Clean("/" + filepath.ToSlash(src))[1:]
	if clean == "" {
		clean = "."
	}
	if !hasWildcard(clean) {
		sel, err := s.selectPath(clean)
		if err != nil {
			return nil, err
		}
		return []selection{sel}, nil
	}
	// Wildcards: match every path of the tree, segment by segment.
	var matches []string
	err := s.walk(".", func(rel string, d fs.DirEntry) error {
		if rel == "." {
			return nil
		}
		ok, err := path.Match(clean, rel)
		if err != nil {
			return fmt.Errorf("invalid pattern %q: %w", src, err)
		}
		if ok {
			matches = append(matches, rel)
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []selection
	for _, m := range matches {
		sel, err := s.selectPath(m)
		if err != nil {
			return nil, err
		}
		out = append(out, sel)
	}
	return out, nil
}

func (s *source) selectPath(rel string) (selection, error) {
	if s.ignored(rel) {
		return selection{}, &NotFoundError{Path: rel}
	}
	abs, err := s.resolve(rel)
	if err != nil {
		return selection{}, fmt.Errorf("resolving %s: %w", rel, err)
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return selection{}, &NotFoundError{Path: rel}
		}
		return selection{}, err
	}
	if !fi.IsDir() {
		return selection{src: s, entries: []entry{{abs: abs, info: fi}}, name: path.Base(rel), rel: rel}, nil
	}
	sel := selection{src: s, dirContents: true, name: path.Base(rel), rel: rel}
	// The directory itself gives the target directory's metadata.
	sel.entries = append(sel.entries, entry{abs: abs, rel: "", info: fi})
	base := rel
	err = s.walkAbs(abs, base, func(sub string, a string, info fs.FileInfo) {
		sel.entries = append(sel.entries, entry{abs: a, rel: sub, info: info})
	})
	return sel, err
}

// walk visits the tree from rel (relative to the root), skipping ignored
// paths, in lexical order, never following symlinks.
func (s *source) walk(rel string, fn func(rel string, d fs.DirEntry) error) error {
	start := filepath.Join(s.root, rel)
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(s.root, p)
		r = filepath.ToSlash(r)
		if r != "." && s.ignored(r) {
			if d.IsDir() && (s.ignore == nil || !s.ignore.Exclusions()) {
				return fs.SkipDir
			}
			if !d.IsDir() {
				return nil
			}
			// A directory excluded with exceptions below it: keep
			// walking, its files are checked one by one.
		}
		return fn(r, d)
	})
}

// walkAbs lists a directory's tree: sub is relative to dir; ignore rules
// apply to base/sub (paths relative to the root).
func (s *source) walkAbs(dir, base string, fn func(sub, abs string, info fs.FileInfo)) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		sub, _ := filepath.Rel(dir, p)
		sub = filepath.ToSlash(sub)
		if s.ignored(path.Join(base, sub)) {
			if d.IsDir() && !s.ignore.Exclusions() {
				return fs.SkipDir
			}
			if !d.IsDir() {
				return nil
			}
			// Excluded directory with possible exceptions inside: its
			// entry is dropped, its children are checked.
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fn(sub, p, info)
		return nil
	})
}

// digestSelections digests what a copy reads: names, types, modes, link
// targets and contents (not times or owners, as docker).
func digestSelections(hashes *hashCache, sels []selection) (string, error) {
	h := sha256.New()
	for _, sel := range sels {
		fmt.Fprintf(h, "sel %q %v\n", sel.name, sel.dirContents)
		ents := append([]entry(nil), sel.entries...)
		sort.Slice(ents, func(a, b int) bool { return ents[a].rel < ents[b].rel })
		for _, e := range ents {
			mode := e.info.Mode()
			fmt.Fprintf(h, "%q %o %d", e.rel, uint32(mode.Perm()|mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)), mode.Type())
			if !sel.src.context {
				uid, gid := ownerOf(e.info)
				fmt.Fprintf(h, " %d:%d", uid, gid)
			}
			switch {
			case mode&fs.ModeSymlink != 0:
				t, err := os.Readlink(e.abs)
				if err != nil {
					return "", err
				}
				fmt.Fprintf(h, " -> %q", t)
			case mode.IsRegular():
				d, err := hashes.fileDigest(e.abs, e.info)
				if err != nil {
					return "", err
				}
				fmt.Fprintf(h, " %s", d)
			}
			h.Write([]byte{'\n'})
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashCache remembers file digests by path and stat data, so that a
// rebuild does not read unchanged files again (buildkit keeps a similar
// cache). A nil cache hashes every time.
type hashCache struct {
	path    string
	entries map[string]string
	dirty   bool
}

func hashKey(p string, fi fs.FileInfo) string {
	st := statOf(fi)
	return fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00%d\x00%d", p, st.dev, st.ino, fi.Size(), st.mtime, st.ctime)
}

func (c *hashCache) fileDigest(p string, fi fs.FileInfo) (string, error) {
	var key string
	if c != nil {
		key = hashKey(p, fi)
		if d, ok := c.entries[key]; ok {
			return d, nil
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	d := hex.EncodeToString(h.Sum(nil))
	if c != nil {
		c.entries[key] = d
		c.dirty = true
	}
	return d, nil
}
