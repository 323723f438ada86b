package engine

import (
	"context"
	"testing"
)

// TestTemplateRecordsVersion: the registry records the version of a
// template last added, also when it compiles to the same program, and
// forgets it when it is removed; constraints survive a new version.
func TestTemplateRecordsVersion(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Options{})
	ct := newTemplate(t, "K8sVersioned", alwaysViolateRego)
	ct.Generation, ct.UID = 1, "u1"
	if got := e.Template("K8sVersioned"); got != nil {
		t.Fatalf("Template before AddTemplate: %v", got.Name)
	}
	if err := e.AddTemplate(ctx, ct); err != nil {
		t.Fatal(err)
	}
	if err := e.AddConstraint(ctx, newConstraint(t, "K8sVersioned", "c", "")); err != nil {
		t.Fatal(err)
	}
	next := ct.DeepCopy()
	next.Generation = 2
	if err := e.AddTemplate(ctx, next); err != nil {
		t.Fatal(err)
	}
	got := e.Template("K8sVersioned")
	if got == nil || got.Generation != 2 || got.UID != "u1" {
		t.Fatalf("Template = %+v, want generation 2", got)
	}
	if ts, cs := e.Counts(); ts != 1 || cs != 1 {
		t.Errorf("Counts = %d, %d; want 1, 1", ts, cs)
	}
	got.Generation = 7 // a copy
	if e.Template("K8sVersioned").Generation != 2 {
		t.Error("Template returned the registry's own copy")
	}
	if err := e.RemoveTemplate(ctx, next); err != nil {
		t.Fatal(err)
	}
	if e.Template("K8sVersioned") != nil {
		t.Error("Template after RemoveTemplate")
	}
	if ts, cs := e.Counts(); ts != 0 || cs != 0 {
		t.Errorf("Counts = %d, %d; want 0, 0", ts, cs)
	}
}
