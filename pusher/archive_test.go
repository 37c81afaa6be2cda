package pusher

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSaveLoadFormats(t *testing.T) {
	s := newStore(t)
	a := localImage(t, s, "localhost/a:1", "aaa")
	b := localImage(t, s, "localhost/b:2", "bbb")
	for _, format := range []string{DockerArchive, OCIArchive, OCIDir} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			o := SaveOptions{Format: format, Output: &buf}
			dir := filepath.Join(t.TempDir(), "layout")
			if format == OCIDir {
				o.Dir = dir
			}
			if err := Save(ctxT(t), s, []string{"localhost/a:1", "localhost/b:2"}, o); err != nil {
				t.Fatal(err)
			}
			s2 := newStore(t)
			input := ""
			if format == OCIDir {
				input = dir
			}
			imgs, err := Load(ctxT(t), s2, input, bytes.NewReader(buf.Bytes()), fastOptions())
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 2 {
				t.Fatalf("loaded %d images", len(imgs))
			}
			for _, want := range []struct{ name, id string }{{"localhost/a:1", a.ID}, {"localhost/b:2", b.ID}} {
				got, err := s2.Lookup(want.name)
				if err != nil || got.ID != want.id {
					t.Fatalf("%s: %v, %v", want.name, got, err)
				}
			}
		})
	}
}

func TestLoadGzippedArchiveFromFile(t *testing.T) {
	s := newStore(t)
	a := localImage(t, s, "localhost/a:1", "aaa")
	var buf bytes.Buffer
	if err := Save(ctxT(t), s, []string{a.ID}, SaveOptions{Output: &buf}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "a.tar.gz")
	var gz bytes.Buffer
	zw := newGzipWriter(&gz)
	zw.Write(buf.Bytes())
	zw.Close()
	os.WriteFile(p, gz.Bytes(), 0o644)
	s2 := newStore(t)
	imgs, err := Load(ctxT(t), s2, p, nil, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].ID != a.ID || len(imgs[0].Names) != 0 {
		t.Fatalf("loaded %+v", imgs)
	}
}
