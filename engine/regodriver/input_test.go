package regodriver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// slowReviewValue is how the frameworks driver makes input.review.
func slowReviewValue(raw []byte, ns map[string]any) (ast.Value, error) {
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]any{}
	}
	m["namespaceObject"] = ns
	return ast.InterfaceToValue(m)
}

func checkSameValue(t *testing.T, name string, raw []byte, ns map[string]any) {
	t.Helper()
	want, wantErr := slowReviewValue(raw, ns)
	got, gotErr := reviewTerm(json.RawMessage(raw), ns)
	if (wantErr == nil) != (gotErr == nil) {
		t.Errorf("%s: error %v, want %v", name, gotErr, wantErr)
		return
	}
	if wantErr != nil {
		return
	}
	// Compare structure and the printed form: numbers must print alike.
	if got.Value.Compare(want) != 0 || got.Value.String() != want.String() {
		t.Errorf("%s:\n got %s\nwant %s", name, got.Value, want)
	}
}

func TestReviewDecoding(t *testing.T) {
	cases := map[string]string{
		"empty":                     `{}`,
		"nested":                    `{"a": {"b": [1, 2.5, -0, 0.1, 1e3, 1E-7, 1000000, 123456789012345678901234567890, -12.50]}, "c": [], "d": {}}`,
		"literals":                  `{"t": true, "f": false, "n": null}`,
		"escapes":                   `{"s": "a\"b\\c\/d\n\t\u00e9\ud83d\ude00", "k\u00e9y": 1}`,
		"bad surrogate":             `{"s": "\ud800x"}`,
		"unicode":                   `{"s": "héllo wörld ✓"}`,
		"invalid utf8":              "{\"s\": \"a\xffb\"}",
		"duplicate":                 `{"a": 1, "a": 2, "b": {"c": 1, "c": [3]}}`,
		"whitespace":                " { \"a\" :\n [ 1 , 2 ] ,\t\"b\" : { } } ",
		"out of range":              `{"n": 1e400}`,
		"array":                     `[1, 2]`,
		"null":                      `null`,
		"string":                    `"x"`,
		"trailing":                  `{"a": 1} x`,
		"truncated":                 `{"a": [1, 2`,
		"namespaceObject in review": `{"namespaceObject": {"x": 1}}`,
	}
	// Past the size where objects get an index: repeats before and after it.
	var many strings.Builder
	many.WriteString(`{"k0": "first"`)
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&many, `, "k%d": %d`, i, i)
	}
	many.WriteString(`, "k0": "last", "k3": "three", "k30": [30]}`)
	cases["many duplicates"] = many.String()
	for _, name := range []string{"empty", "nested", "literals", "escapes", "unicode", "invalid utf8", "duplicate", "whitespace", "many duplicates"} {
		if _, ok := decodeObject([]byte(cases[name])); !ok {
			t.Errorf("%s: the fast decoder gave up", name)
		}
	}
	for name, raw := range cases {
		checkSameValue(t, name, []byte(raw), nil)
		checkSameValue(t, name+" with namespace", []byte(raw), map[string]any{"metadata": map[string]any{"name": "ns", "n": int64(3)}})
	}
}

// TestReviewDecodingLibrary decodes every gatekeeper-library sample both
// ways.
func TestReviewDecodingLibrary(t *testing.T) {
	dir := testenv.LibraryDir(t)
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".yaml" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return nil // multi-document files; the others suffice
		}
		checkSameValue(t, p, j, nil)
		if _, ok := decodeObject(j); !ok {
			t.Errorf("%s: the fast decoder gave up", p)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no files decoded")
	}
}
