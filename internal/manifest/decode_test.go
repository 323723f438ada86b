package manifest_test

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/manifest"
)

type decodeSpec struct {
	Name   string  `json:"name"`
	Count  int32   `json:"count"`
	Ratio  float64 `json:"ratio"`
	On     bool    `json:"on"`
	Values []any   `json:"values"`
	Inner  struct {
		Tags []string `json:"tags"`
	} `json:"inner"`
}

// TestDecode: a field of the wrong type is named by its path, with what
// it holds and what it must hold; good input decodes as the converter
// decodes it.
func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  map[string]any
		at   string
		want string
	}{
		{"string for list", map[string]any{"values": "x"}, "spec", "spec.values: a string, not a list"},
		{"list for string", map[string]any{"name": []any{"x"}}, "spec", "spec.name: a list, not a string"},
		{"object for bool", map[string]any{"on": map[string]any{}}, "spec", "spec.on: an object, not true or false"},
		{"string for integer", map[string]any{"count": "3"}, "spec", "spec.count: a string, not an integer"},
		{"fraction for integer", map[string]any{"count": 1.5}, "spec", "spec.count: the number 1.5, not an integer"},
		{"nested", map[string]any{"inner": map[string]any{"tags": []any{"a", int64(1)}}}, "spec", "spec.inner.tags: a number, not a string"},
		{"whole object", map[string]any{"ratio": "x"}, "", "ratio: a string, not a number"},
		{"list element", map[string]any{"values": []any{"a"}, "inner": map[string]any{"tags": []any{"a", map[string]any{}}}}, "spec", "spec.inner.tags: an object, not a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out decodeSpec
			err := manifest.Decode(tc.raw, &out, tc.at)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode = %v, want %q", err, tc.want)
			}
		})
	}
	// encoding/json matches Name to name; the converter does not, and
	// fails on count: the error must not blame name.
	t.Run("other case", func(t *testing.T) {
		var out decodeSpec
		err := manifest.Decode(map[string]any{"Name": []any{"a"}, "count": "3"}, &out, "spec")
		if err == nil || strings.Contains(err.Error(), "spec.name") {
			t.Errorf("Decode = %v, want an error not blaming spec.name, which is right", err)
		}
	})
	t.Run("not a pointer", func(t *testing.T) {
		if err := manifest.Decode(map[string]any{"name": []any{"a"}}, decodeSpec{}, "spec"); err == nil {
			t.Error("Decode into a value did not fail")
		}
	})
	var out decodeSpec
	raw := map[string]any{"name": "n", "count": int64(3), "values": []any{int64(1), "a"}, "unknown": true}
	if err := manifest.Decode(raw, &out, "spec"); err != nil {
		t.Fatal(err)
	}
	if out.Name != "n" || out.Count != 3 || len(out.Values) != 2 || out.Values[0] != int64(1) {
		t.Errorf("decoded %+v; want the converter's values (integers as int64)", out)
	}
}
