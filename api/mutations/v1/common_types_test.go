package v1_test

import (
	"encoding/json"
	"reflect"
	"testing"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
)

func TestAnythingJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{`"Always"`, "Always"},
		{`false`, false},
		{`3000`, int64(3000)},
		{`1.5`, 1.5},
		{`[3000]`, []any{int64(3000)}},
		{`{"type":"RuntimeDefault","n":[1,{"a":null}]}`, map[string]any{"type": "RuntimeDefault", "n": []any{int64(1), map[string]any{"a": nil}}}},
	} {
		var p mutationsv1.Parameters
		if err := json.Unmarshal([]byte(`{"assign":{"value":`+tc.in+`}}`), &p); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if p.Assign.Value == nil {
			t.Fatalf("%s: value not set", tc.in)
		}
		got := p.Assign.Value.DeepCopy().Value
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: copy = %#v, want %#v", tc.in, got, tc.want)
		}
		out, err := json.Marshal(p.Assign.Value)
		if err != nil {
			t.Fatal(err)
		}
		var back, orig any
		_ = json.Unmarshal(out, &back)
		_ = json.Unmarshal([]byte(tc.in), &orig)
		if !reflect.DeepEqual(back, orig) {
			t.Errorf("%s: marshaled as %s", tc.in, out)
		}
	}
	var p mutationsv1.Parameters
	if err := json.Unmarshal([]byte(`{"assign":{"value":null}}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.Assign.Value != nil && p.Assign.Value.Value != nil {
		t.Errorf("null value = %#v, want none", p.Assign.Value.Value)
	}
}

func TestValuesDeepCopy(t *testing.T) {
	in := &mutationsv1.Values{FromList: []any{"--v=2", float64(3), map[string]any{"k": []any{"x"}}}}
	out := in.DeepCopy()
	want := []any{"--v=2", int64(3), map[string]any{"k": []any{"x"}}}
	if !reflect.DeepEqual(out.FromList, want) {
		t.Fatalf("copy = %#v, want %#v", out.FromList, want)
	}
	out.FromList[2].(map[string]any)["k"].([]any)[0] = "changed"
	if in.FromList[2].(map[string]any)["k"].([]any)[0] != "x" {
		t.Error("the copy shares the original's maps")
	}
	var nilValues *mutationsv1.Values
	if nilValues.DeepCopy() != nil {
		t.Error("copy of nil is not nil")
	}
}

func TestMutatorDeepCopy(t *testing.T) {
	a := &mutationsv1.Assign{Spec: mutationsv1.AssignSpec{
		Location:   "spec.dnsConfig",
		Parameters: mutationsv1.Parameters{Assign: mutationsv1.AssignField{Value: &mutationsv1.Anything{Value: map[string]any{"nameservers": []any{"1.2.3.4"}}}}},
	}}
	b := a.DeepCopy()
	b.Spec.Parameters.Assign.Value.Value.(map[string]any)["nameservers"] = nil
	if a.Spec.Parameters.Assign.Value.Value.(map[string]any)["nameservers"] == nil {
		t.Error("DeepCopy shares the assigned value")
	}
}
