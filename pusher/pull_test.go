package pusher

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestPullStoresImageAsReceived(t *testing.T) {
	rs := newRegistry(t)
	ref := rs.ref("team/app:1")
	want := pushRandom(t, ref, 4096, 3)
	s := newStore(t)
	img, err := Pull(ctxT(t), s, ref, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	cfgName, _ := want.ConfigName()
	if img.ID != cfgName.Hex {
		t.Fatalf("image ID %s, want the config digest %s", img.ID, cfgName.Hex)
	}
	rawM, _ := want.RawManifest()
	if !bytes.Equal(img.Manifest, rawM) {
		t.Fatalf("manifest not kept as received")
	}
	rawC, _ := want.RawConfigFile()
	if !bytes.Equal(img.Config, rawC) {
		t.Fatalf("config not kept as received")
	}
	if len(img.Names) != 1 || img.Names[0] != ref {
		t.Fatalf("names = %v, want [%s]", img.Names, ref)
	}
	chain, err := s.LayerChain(img.TopLayer)
	if err != nil || len(chain) != 3 {
		t.Fatalf("chain %d layers, %v", len(chain), err)
	}
	cf, _ := want.ConfigFile()
	for i, l := range chain {
		if l.UncompressedDigest.String() != cf.RootFS.DiffIDs[i].String() {
			t.Fatalf("layer %d diff ID %s, want %s", i, l.UncompressedDigest, cf.RootFS.DiffIDs[i])
		}
	}
	// Again: nothing is downloaded.
	before := rs.blobs.Load()
	if _, err := Pull(ctxT(t), s, ref, fastOptions()); err != nil {
		t.Fatal(err)
	}
	if got := rs.blobs.Load() - before; got != 1 { // the config only
		t.Fatalf("second pull fetched %d blobs, want 1 (the config)", got)
	}
	// By digest.
	d, _ := want.Digest()
	byDigest := rs.ref("team/app@" + d.String())
	img2, err := Pull(ctxT(t), s, byDigest, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	if img2.ID != img.ID {
		t.Fatalf("pull by digest gave %s", img2.ID)
	}
	if _, err := s.Lookup(byDigest); err != nil {
		t.Fatalf("lookup by digest after pull: %v", err)
	}
}

func TestConcurrentPullsStoreOneCopy(t *testing.T) {
	rs := newRegistry(t)
	ref := rs.ref("team/app:1")
	pushRandom(t, ref, 200000, 4)
	s := newStore(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Pull(ctxT(t), s, ref, fastOptions())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	imgs, _ := s.Images()
	layers, _ := s.Storage().Layers()
	if len(imgs) != 1 || len(layers) != 4 {
		t.Fatalf("%d images, %d layers; want 1 and 4", len(imgs), len(layers))
	}
}

func TestPullShortNameSearchAndMirror(t *testing.T) {
	rs := newRegistry(t)
	mirror := newRegistry(t)
	pushRandom(t, rs.ref("library/busybox:latest"), 1024, 1)
	conf := `unqualified-search-registries = ["` + mirror.host + `", "quay.io"]
[[registry]]
prefix = "quay.io"
location = "` + rs.host + `"
`
	cfg, err := ParseRegistriesConfig("test.conf", []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	o := fastOptions()
	o.Registries = cfg
	s := newStore(t)
	// The first search registry lacks it; quay.io is rewritten to rs.
	img, err := Pull(ctxT(t), s, "library/busybox", o)
	if err != nil {
		t.Fatal(err)
	}
	if img.Names[0] != "quay.io/library/busybox:latest" {
		t.Fatalf("names %v", img.Names)
	}
	// Found again locally under the short name.
	if _, err := EnsureImage(ctxT(t), s, "library/busybox", PullNever, o); err != nil {
		t.Fatal(err)
	}
	// A mirror is tried first.
	pushRandom(t, mirror.ref("x/y:1"), 1024, 1)
	cfg2, err := ParseRegistriesConfig("t2.conf", []byte(`[[registry]]
location = "example.invalid:5000"
[[registry.mirror]]
location = "`+mirror.host+`"
`))
	if err != nil {
		t.Fatal(err)
	}
	o.Registries = cfg2
	img, err = Pull(ctxT(t), s, "example.invalid:5000/x/y:1", o)
	if err != nil {
		t.Fatal(err)
	}
	if img.Names[0] != "example.invalid:5000/x/y:1" {
		t.Fatalf("names %v", img.Names)
	}
}

func TestPullNotFound(t *testing.T) {
	rs := newRegistry(t)
	s := newStore(t)
	_, err := Pull(ctxT(t), s, rs.ref("no/such:1"), fastOptions())
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want NotFoundError", err)
	}
	if !strings.Contains(err.Error(), "no/such:1") {
		t.Fatalf("error does not name the image: %v", err)
	}
}

var _ = digest.FromBytes
