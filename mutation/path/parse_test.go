package path_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/mutation/path"
)

func field(name string) path.Node { return path.Node{Kind: path.Field, Name: name} }

func list(key string, value any) path.Node {
	if value == "*" {
		return path.Node{Kind: path.List, Name: key, Glob: true}
	}
	return path.Node{Kind: path.List, Name: key, Value: value}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want path.Path
		str  string // String(), when not in
	}{
		{"", nil, ""},
		{"spec", path.Path{field("spec")}, ""},
		{"spec.containers[name: foo].imagePullPolicy", path.Path{field("spec"), field("containers"), list("name", "foo"), field("imagePullPolicy")}, ""},
		{"spec.containers[name:foo].image", path.Path{field("spec"), field("containers"), list("name", "foo"), field("image")}, "spec.containers[name: foo].image"},
		{"spec.containers[name:*].securityContext", path.Path{field("spec"), field("containers"), list("name", "*"), field("securityContext")}, "spec.containers[name: *].securityContext"},
		{" spec . containers [ name : * ] ", path.Path{field("spec"), field("containers"), list("name", "*")}, "spec.containers[name: *]"},
		{"spec.ports[containerPort: 80].protocol", path.Path{field("spec"), field("ports"), list("containerPort", int64(80)), field("protocol")}, ""},
		{`metadata.annotations."example.com/owner"`, path.Path{field("metadata"), field("annotations"), field("example.com/owner")}, ""},
		{`metadata.labels.'a b'`, path.Path{field("metadata"), field("labels"), field("a b")}, `metadata.labels."a b"`},
		{`spec.containers["name": "my container"]`, path.Path{field("spec"), field("containers"), list("name", "my container")}, `spec.containers[name: "my container"]`},
		{`a."with \"quote\" and \\"`, path.Path{field("a"), field(`with "quote" and \`)}, ""},
		{`a."0starts"`, path.Path{field("a"), field("0starts")}, ""},
		{`a.""`, path.Path{field("a"), field("")}, ""},
		{`a[k: "*"]`, path.Path{field("a"), list("k", "*")}, `a[k: "*"]`},
		{"under_score.dash-ed.CAPS9", path.Path{field("under_score"), field("dash-ed"), field("CAPS9")}, ""},
	} {
		got, err := path.Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		// A quoted "*" is a string key value, not the glob.
		if tc.in == `a[k: "*"]` {
			tc.want[1] = path.Node{Kind: path.List, Name: "k", Value: "*"}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
		str := tc.str
		if str == "" {
			str = tc.in
		}
		if got.String() != str {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got.String(), str)
		}
		again, err := path.Parse(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("Parse(%q) does not read back: %#v, %v", got.String(), again, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"spec.", "at position 5: trailing '.'"},
		{".spec", "at position 0: expected a field name, got '.'"},
		{"spec..a", "at position 5: expected a field name, got '.'"},
		{"[name: foo]", "expected a field name, got '['"},
		{"spec.containers[name: foo][name: bar]", "expected '.' or the end, got '['"},
		{"spec.containers[name foo]", `expected ':' after the key field "name", got name "foo"`},
		{"spec.containers[: foo]", "expected the key field of a list selector, got ':'"},
		{"spec.containers[name: ]", `expected the key value of "name" or *, got ']'`},
		{"spec.containers[name: foo", "expected ']' to close the list selector, got the end"},
		{"spec.containers[name: foo bar]", `expected ']' to close the list selector, got name "bar"`},
		{"spec.containers[name: 0abc]", `expected ']' to close the list selector, got name "abc"`},
		{"spec.containers[name: 99999999999999999999]", "is not a 64-bit integer"},
		{"spec.0containers", "expected a field name, got integer 0"},
		{"spec.cont/ainers", `unexpected character '/'`},
		{"spec.é", `unexpected character 'é'`},
		{`spec."unterminated`, "at position 5: unterminated quoted name"},
		{"spec*", "expected '.' or the end, got '*'"},
		{"spec containers", `expected '.' or the end, got name "containers"`},
	} {
		_, err := path.Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q): no error, want %q", tc.in, tc.want)
			continue
		}
		if !errors.Is(err, path.ErrSyntax) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %q, want ErrSyntax containing %q", tc.in, err, tc.want)
		}
	}
}

func TestHasPrefix(t *testing.T) {
	loc, _ := path.Parse("spec.containers[name: *].securityContext.runAsUser")
	for _, tc := range []struct {
		sub  string
		want bool
	}{
		{"spec", true},
		{"spec.containers[name: *]", true},
		{"spec.containers[name: *].securityContext.runAsUser", true},
		{"spec.containers[name: foo]", false},
		{"spec.containers", true},
		{"spec.initContainers", false},
		{"spec.containers[name: *].securityContext.runAsUser.x", false},
	} {
		sub, err := path.Parse(tc.sub)
		if err != nil {
			t.Fatal(err)
		}
		if got := loc.HasPrefix(sub); got != tc.want {
			t.Errorf("HasPrefix(%q) = %t, want %t", tc.sub, got, tc.want)
		}
	}
}
