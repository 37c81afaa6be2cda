package commands

import "testing"

func TestSplitCpArg(t *testing.T) {
	for _, c := range []struct{ in, ctr, path string }{
		{"web:/etc/hosts", "web", "/etc/hosts"},
		{"web:rel", "web", "rel"},
		{"/abs/a:b", "", "/abs/a:b"},
		{"./a:b", "", "./a:b"},
		{"file", "", "file"},
		{"-", "", "-"},
		{"web:", "web", ""},
	} {
		ctr, p := splitCpArg(c.in)
		if ctr != c.ctr || p != c.path {
			t.Errorf("splitCpArg(%q) = %q, %q; want %q, %q", c.in, ctr, p, c.ctr, c.path)
		}
	}
}
