package mutation_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/portcullis-dev/portcullis/mutation"
)

func TestConflicts(t *testing.T) {
	const imageYAML = `
apiVersion: mutations.gatekeeper.sh/v1alpha1
kind: AssignImage
metadata:
  name: image
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: "spec.containers[name: *].image"
  parameters:
    assignDomain: my.registry.io
`
	const setYAML = `
apiVersion: mutations.gatekeeper.sh/v1
kind: ModifySet
metadata:
  name: set
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: "spec.containers"
  parameters:
    values:
      fromList: [x]
`
	for _, tc := range []struct {
		name     string
		a, b     string
		conflict bool
	}{
		{"list and object", assignYAML("a", "spec.containers[name: foo].image", `"x"`), assignYAML("b", "spec.containers.image", `"x"`), true},
		{"two list keys", assignYAML("a", "spec.containers[name: foo].image", `"x"`), assignYAML("b", "spec.containers[image: foo].name", `"x"`), true},
		{"same schema", assignYAML("a", "spec.containers[name: foo].image", `"x"`), assignYAML("b", "spec.containers[name: *].imagePullPolicy", `"x"`), false},
		{"unknown terminal", assignYAML("a", "spec.containers", "[]"), assignYAML("b", "spec.containers[name: foo].image", `"x"`), false},
		{"set and list", setYAML, assignYAML("b", "spec.containers[name: foo].image", `"x"`), true},
		{"image extended", imageYAML, assignYAML("b", "spec.containers[name: *].image.tag", `"x"`), true},
		{"image assigned", imageYAML, assignYAML("b", "spec.containers[name: *].image", `"nginx"`), false},
		{"other kind", assignYAML("a", "spec.containers[name: foo].image", `"x"`), `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: b
spec:
  applyTo:
  - groups: ["apps"]
    kinds: ["Deployment"]
    versions: ["v1"]
  location: spec.containers.image
  parameters:
    assign:
      value: x
`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mutation.NewSystem(mutation.Options{})
			a, b := newMutator(t, tc.a), newMutator(t, tc.b)
			if _, err := s.Upsert(a); err != nil {
				t.Fatalf("first: %v", err)
			}
			affected, err := s.Upsert(b)
			if !tc.conflict {
				if err != nil || len(affected) != 0 {
					t.Fatalf("Upsert = %v, %v; want no conflict", affected, err)
				}
				return
			}
			var ce *mutation.ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("Upsert = %v; want a ConflictError", err)
			}
			ids := []mutation.ID{a.ID(), b.ID()}
			if ids[0].Kind > ids[1].Kind || ids[0].Kind == ids[1].Kind && ids[0].Name > ids[1].Name {
				ids[0], ids[1] = ids[1], ids[0]
			}
			if !reflect.DeepEqual(ce.IDs, ids) {
				t.Errorf("conflict IDs = %v, want %v", ce.IDs, ids)
			}
			if !reflect.DeepEqual(affected, []mutation.ID{a.ID()}) {
				t.Errorf("affected = %v, want the first mutator, now in conflict", affected)
			}
			if err := s.Conflicts(a.ID()); err == nil || err.Error() != ce.Error() {
				t.Errorf("Conflicts(first) = %v, want %v", err, ce)
			}
			if _, c := s.Counts(); c != 2 {
				t.Errorf("%d in conflict, want 2", c)
			}
			// Neither applies.
			if _, changed := mutate(t, s, obj(t, nginxPod), nil, mutation.Create); changed {
				t.Error("mutators in conflict were applied")
			}
			// Removing one resolves the other's conflict.
			if affected := s.Remove(b.ID()); !reflect.DeepEqual(affected, []mutation.ID{a.ID()}) {
				t.Errorf("Remove: affected %v, want the first", affected)
			}
			if err := s.Conflicts(a.ID()); err != nil {
				t.Errorf("after Remove: %v", err)
			}
		})
	}
}

func TestConflictMessage(t *testing.T) {
	s := mutation.NewSystem(mutation.Options{})
	_, _ = s.Upsert(newMutator(t, assignYAML("a", "spec.containers[name: foo].image", `"x"`)))
	_, err := s.Upsert(newMutator(t, assignYAML("b", "spec.containers.image", `"x"`)))
	want := "the following mutators have conflicting schemas: [Assign.mutations.gatekeeper.sh /a,Assign.mutations.gatekeeper.sh /b]"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	// Upserting the same mutator again changes nothing.
	affected, err2 := s.Upsert(newMutator(t, assignYAML("b", "spec.containers.image", `"x"`)))
	if len(affected) != 0 || err2 == nil || err2.Error() != want {
		t.Errorf("same again: %v, %v", affected, err2)
	}
	// Fixing b's location resolves both.
	affected, err = s.Upsert(newMutator(t, assignYAML("b", "spec.containers[name: bar].image", `"x"`)))
	if err != nil || !reflect.DeepEqual(affected, []mutation.ID{{Kind: "Assign", Name: "a"}}) {
		t.Errorf("fixed: %v, %v", affected, err)
	}
}
