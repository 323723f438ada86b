package mutation

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/mutation/path"
)

// growSetter appends to a list on every pass: no real mutator keeps
// changing an object (schema conflicts are left out for that reason), so
// a fake one stands for a set that never converges.
type growSetter struct{}

func (growSetter) set(obj map[string]any, key string, _ objectMeta) (bool, error) {
	l, _ := obj[key].([]any)
	obj[key] = append(l, "x")
	return true, nil
}

type recorder struct{ calls []any }

func (r *recorder) RecordIterations(converged bool, n int) { r.calls = append(r.calls, converged, n) }

// TestNotConverging: a set that keeps changing the object fails after
// one more iteration than there are mutators, with Gatekeeper's error,
// and leaves the object as it was.
func TestNotConverging(t *testing.T) {
	match, err := engine.CompileMatch(engine.Match{})
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := path.Parse("spec.grow")
	rec := &recorder{}
	s := NewSystem(Options{Metrics: rec, NewID: func() string { return "id-1" }})
	for _, name := range []string{"a", "b"} {
		m := &Mutator{id: ID{Kind: KindAssign, Name: name}, loc: loc, match: match, set: growSetter{}}
		if _, err := s.Upsert(m); err != nil {
			t.Fatal(err)
		}
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"namespace": "ns", "generateName": "web-"}, "spec": map[string]any{}}}
	before := obj.DeepCopy()
	changed, err := s.Mutate(context.Background(), obj, nil, engine.SourceOriginal, Create)
	if changed || !errors.Is(err, ErrNotConverging) {
		t.Fatalf("Mutate = %t, %v; want ErrNotConverging", changed, err)
	}
	if want := "mutation not converging: mutation id-1 not converging for  Pod ns web-"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !reflect.DeepEqual(obj.Object, before.Object) {
		t.Errorf("the object was changed on an error: %v", obj.Object)
	}
	if want := []any{false, 3}; !reflect.DeepEqual(rec.calls, want) {
		t.Errorf("recorded %v, want %v (2 mutators + 1 iterations, not converged)", rec.calls, want)
	}
}
