package commands

import (
	"io"
	"strings"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	app := NewApp(strings.NewReader(""), io.Discard, io.Discard)
	cases := []struct{ in, want string }{
		{"nook images busybox --format x", "nook images --format x busybox"},
		{"nook --root /r images -q busybox --digests", "nook --root /r images -q --digests busybox"},
		{"nook image inspect busybox -f {{.Id}}", "nook image inspect -f {{.Id}} busybox"},
		{"nook rmi a b -f", "nook rmi -f a b"},
		{"nook run --rm busybox ls -l", "nook run --rm busybox ls -l"},
		{"nook unshare ls -l", "nook unshare ls -l"},
		{"nook tag a b -- -c", "nook tag a b -- -c"},
		{"nook images --format=x busybox", "nook images --format=x busybox"},
	}
	for _, c := range cases {
		got := strings.Join(permuteArgs(app, strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("permuteArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
