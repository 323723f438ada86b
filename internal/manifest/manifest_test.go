package manifest

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		wantObjs []string // kind/name per object
		wantErr  error
		errHas   []string
	}{
		{
			name:     "multi-document with comments and empty docs",
			data:     "# header\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
			wantObjs: []string{"Pod/a", "Namespace/b"},
		},
		{
			name:     "json",
			data:     `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"x":"1"}}`,
			wantObjs: []string{"ConfigMap/c"},
		},
		{
			name:     "list is expanded",
			data:     "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: p1}}\n- {apiVersion: v1, kind: Pod, metadata: {name: p2}}\n",
			wantObjs: []string{"Pod/p1", "Pod/p2"},
		},
		{
			name:    "malformed yaml names the document",
			data:    "apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: [unclosed\n",
			wantErr: ErrParse,
			errHas:  []string{"f.yaml", "document 1"},
		},
		{
			name:    "a scalar is not an object",
			data:    "just a string\n",
			wantErr: ErrNotObject,
			errHas:  []string{"f.yaml", "document 0", "a string"},
		},
		{
			name:    "a list is not an object",
			data:    "- a\n- b\n",
			wantErr: ErrNotObject,
			errHas:  []string{"a list"},
		},
		{
			name:    "missing kind",
			data:    "apiVersion: v1\nmetadata: {name: x}\n",
			wantErr: ErrNoKind,
			errHas:  []string{`"x"`},
		},
		{
			name:    "object over 3 MiB",
			data:    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  x: \"" + strings.Repeat("a", MaxObjectBytes) + "\"\n",
			wantErr: ErrTooLarge,
			errHas:  []string{"f.yaml", "limit"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Parse("f.yaml", []byte(tc.data))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			var got []string
			for _, d := range docs {
				got = append(got, d.Object.GetKind()+"/"+d.Object.GetName())
			}
			if strings.Join(got, ",") != strings.Join(tc.wantObjs, ",") {
				t.Fatalf("objects = %v, want %v", got, tc.wantObjs)
			}
		})
	}
}

func TestParseNumbersAreJSONTypes(t *testing.T) {
	docs, err := Parse("n.yaml", []byte("apiVersion: v1\nkind: X\nmetadata: {name: n}\nspec: {i: 3, f: 1.5, big: 9007199254740993}\n"))
	if err != nil {
		t.Fatal(err)
	}
	spec := docs[0].Object.Object["spec"].(map[string]any)
	if _, ok := spec["i"].(int64); !ok {
		t.Errorf("i is %T, want int64", spec["i"])
	}
	if _, ok := spec["f"].(float64); !ok {
		t.Errorf("f is %T, want float64", spec["f"])
	}
	if spec["big"] != int64(9007199254740993) {
		t.Errorf("big = %v, want exact 9007199254740993", spec["big"])
	}
	// Objects must deep-copy: unstructured panics on Go int.
	_ = docs[0].Object.DeepCopy()
}

func TestSourceNamesDocument(t *testing.T) {
	docs, err := Parse("s.yaml", []byte("apiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: B\n"))
	if err != nil {
		t.Fatal(err)
	}
	if docs[0].Source != "s.yaml#0" || docs[1].Source != "s.yaml#1" {
		t.Fatalf("sources = %q, %q", docs[0].Source, docs[1].Source)
	}
	one, err := Parse("one.yaml", []byte("apiVersion: v1\nkind: A\n"))
	if err != nil {
		t.Fatal(err)
	}
	if one[0].Source != "one.yaml" {
		t.Fatalf("single-document source = %q, want one.yaml", one[0].Source)
	}
}

// FuzzParse checks the reader never panics or hangs, and that whatever it
// returns is a usable object.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
		"---\n---\n",
		"apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Pod}]\n",
		"apiVersion: v1\nkind: List\nitems: [1, 2]\n",
		"{\"apiVersion\":\"v1\",\"kind\":\"X\",\"spec\":{\"n\":1e400}}",
		"- 1\n",
		"a: &x [*x]\n",
		"apiVersion: v1\nkind: X\nspec: {a: 18446744073709551616}\n",
		"\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, d := range docs {
			if d.Object.GetKind() == "" || d.Object.GetAPIVersion() == "" {
				t.Fatalf("object without kind or apiVersion accepted: %v", d.Object)
			}
			_ = d.Object.DeepCopy()
		}
	})
}
