package path_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/portcullis-dev/portcullis/mutation/path"
)

// FuzzParse checks that Parse never panics, that every error it returns
// wraps ErrSyntax, and that what it parses reads back the same from its
// String.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "spec", "spec.containers[name: foo].image", "spec.containers[name:*].securityContext",
		`metadata.annotations."example.com/a.b"`, "a[k: 80].b", `a['x\'y': "z"]`, "a.", "a[", "a[k:", "a[k: *",
		"spec.containers[name: foo][x: y]", `"`, `a."b`, "\x00", "a[k: 99999999999999999999]", " a . b [ c : d ] ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := path.Parse(s)
		if err != nil {
			if !errors.Is(err, path.ErrSyntax) {
				t.Fatalf("Parse(%q) = %v, which does not wrap ErrSyntax", s, err)
			}
			return
		}
		for i, n := range p {
			if (i == 0 || p[i-1].Kind == path.List) && n.Kind != path.Field {
				t.Fatalf("Parse(%q) = %#v: a list selector must follow a field", s, p)
			}
			if n.Kind == path.List && n.Glob == (n.Value != nil) {
				t.Fatalf("Parse(%q) = %#v: a list node has a value or a glob", s, p)
			}
		}
		again, err := path.Parse(p.String())
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", s, p.String(), err)
		}
		if !reflect.DeepEqual(again, p) && (len(again) != 0 || len(p) != 0) {
			t.Fatalf("Parse(%q) = %#v, but its String %q parses to %#v", s, p, p.String(), again)
		}
	})
}
