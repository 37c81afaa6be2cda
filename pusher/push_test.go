package pusher

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func remoteManifest(t *testing.T, ref string) (*v1.Manifest, []byte) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	return m, d.Manifest
}

func TestPushLocalImageCompressesOnce(t *testing.T) {
	rs := newRegistry(t)
	s := newStore(t)
	img := localImage(t, s, "localhost/app:1", "hello")
	dest := rs.ref("team/app:1")
	res, err := Push(ctxT(t), s, "localhost/app:1", dest, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	m, raw := remoteManifest(t, dest)
	if res.Digest.String() != digestOf(raw) {
		t.Fatalf("push reported %s, registry has %s", res.Digest, digestOf(raw))
	}
	if m.Layers[0].MediaType != types.OCILayer || m.Config.Digest.Hex != img.ID {
		t.Fatalf("pushed manifest %+v", m)
	}
	// A second push compresses and uploads nothing.
	puts := rs.puts.Load()
	res2, err := Push(ctxT(t), s, "localhost/app:1", dest, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	if rs.puts.Load() != puts {
		t.Fatalf("second push uploaded %d blobs", rs.puts.Load()-puts)
	}
	if res2.Digest != res.Digest {
		t.Fatalf("second push digest %s, first %s", res2.Digest, res.Digest)
	}
	// Pulled into another store: the same image.
	s2 := newStore(t)
	got, err := Pull(ctxT(t), s2, dest, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != img.ID {
		t.Fatalf("pulled %s, pushed %s", got.ID, img.ID)
	}
	// zstd.
	o := fastOptions()
	o.Compression = Zstd
	if _, err := Push(ctxT(t), s, "localhost/app:1", rs.ref("team/app:zstd"), o); err != nil {
		t.Fatal(err)
	}
	mz, _ := remoteManifest(t, rs.ref("team/app:zstd"))
	if mz.Layers[0].MediaType != types.OCILayerZStd {
		t.Fatalf("zstd push wrote %s", mz.Layers[0].MediaType)
	}
	s3 := newStore(t)
	if got, err := Pull(ctxT(t), s3, rs.ref("team/app:zstd"), fastOptions()); err != nil || got.ID != img.ID {
		t.Fatalf("pull of the zstd image: %v, %v", got, err)
	}
}

func TestPushPulledImageKeepsManifest(t *testing.T) {
	rs := newRegistry(t)
	src := rs.ref("team/app:1")
	want := pushRandom(t, src, 8192, 2)
	s := newStore(t)
	if _, err := Pull(ctxT(t), s, src, fastOptions()); err != nil {
		t.Fatal(err)
	}
	puts := rs.puts.Load()
	res, err := Push(ctxT(t), s, src, rs.ref("other/app:2"), fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	d, _ := want.Digest()
	if res.Digest.String() != d.String() {
		t.Fatalf("pushed digest %s, want the pulled %s", res.Digest, d)
	}
	if rs.puts.Load() != puts {
		t.Fatalf("push of a pulled image uploaded %d blobs", rs.puts.Load()-puts)
	}
	var cfg v1.ConfigFile
	_ = json.Unmarshal(nil, &cfg)
}

func digestOf(b []byte) string {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h.String()
}
