package webhook

import (
	"encoding/json"
	"reflect"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// TestDiffPatch: applying the patch to the first value gives the second,
// as the API server applies it.
func TestDiffPatch(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{`{}`, `{}`},
		{`{"a":1}`, `{"a":2}`},
		{`{"a":1}`, `{"a":1,"b":{"c":[1,2]}}`},
		{`{"a":1,"b":2}`, `{"b":2}`},
		{`{"a/b":1,"c~d":2}`, `{"a/b":3,"c~d":4,"e/~":5}`},
		{`{"l":[1,2]}`, `{"l":[1,2,3,4]}`},
		{`{"l":[1,2]}`, `{"l":[2]}`},
		{`{"l":[1,2]}`, `{"l":[3,2,1]}`},
		{`{"l":[{"name":"a"},{"name":"b"}]}`, `{"l":[{"name":"a","x":false},{"name":"b","y":null}]}`},
		{`{"a":{"b":1}}`, `{"a":[1]}`},
		{`{"a":[1]}`, `{"a":"s"}`},
		{`{"a":null}`, `{"a":{"b":true}}`},
		{`{"spec":{"containers":[{"name":"web","securityContext":{"capabilities":{"add":["A","B"]}}}]}}`,
			`{"spec":{"containers":[{"name":"web","securityContext":{"capabilities":{"add":["NEW"]},"runAsNonRoot":true}}],"securityContext":{"fsGroup":3000}}}`},
	} {
		var a, b any
		if err := json.Unmarshal([]byte(tc.a), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(tc.b), &b); err != nil {
			t.Fatal(err)
		}
		ops := diffPatch(a, b, "", nil)
		body, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		if tc.a == tc.b && len(ops) != 0 {
			t.Errorf("%s: patch %s for equal values", tc.a, body)
		}
		p, err := jsonpatch.DecodePatch(body)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		out, err := p.Apply([]byte(tc.a))
		if err != nil {
			t.Fatalf("%s to %s: applying %s: %v", tc.a, tc.b, body, err)
		}
		var got any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("%s patched with %s = %s, want %s", tc.a, body, out, tc.b)
		}
	}
}
