package testenv

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ConstraintEntry reads the constraint kind/name and returns the entry of
// the replica podID in its status.byPod once that reports the
// constraint's current generation.
func ConstraintEntry(ctx context.Context, c client.Reader, kind, name, podID string) (map[string]any, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("constraints.gatekeeper.sh/v1beta1")
	u.SetKind(kind)
	if err := c.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
		return nil, err
	}
	e := ByPod(u, podID)
	if e == nil {
		return nil, fmt.Errorf("no byPod entry for %s: %v", podID, u.Object["status"])
	}
	if gen, _ := e["observedGeneration"].(int64); gen != u.GetGeneration() {
		return nil, fmt.Errorf("byPod entry at generation %d, want %d", gen, u.GetGeneration())
	}
	return e, nil
}

// ConstraintEnforced returns nil when the replica podID reports the
// constraint kind/name enforced, without errors, at its current
// generation, and otherwise what it reports.
func ConstraintEnforced(ctx context.Context, c client.Reader, kind, name, podID string) error {
	e, err := ConstraintEntry(ctx, c, kind, name, podID)
	if err != nil {
		return err
	}
	if e["enforced"] != true || e["errors"] != nil {
		return fmt.Errorf("entry %v", e)
	}
	return nil
}

// WaitEnforced waits, as Eventually does, until the replica podID
// enforces the constraint kind/name (ConstraintEnforced).
func WaitEnforced(t testing.TB, p Poll, c client.Reader, kind, name, podID string) {
	t.Helper()
	Eventually(t, p, kind+" "+name+" to be enforced", func(ctx context.Context) error {
		return ConstraintEnforced(ctx, c, kind, name, podID)
	})
}

// ByPod returns the entry of the replica podID in u's status.byPod, nil
// if there is none.
func ByPod(u *unstructured.Unstructured, podID string) map[string]any {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
	for _, item := range list {
		if m, ok := item.(map[string]any); ok && m["id"] == podID {
			return m
		}
	}
	return nil
}

// GetConstraint reads the constraint kind/name (v1beta1).
func GetConstraint(ctx context.Context, c client.Reader, kind, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("constraints.gatekeeper.sh/v1beta1")
	u.SetKind(kind)
	err := c.Get(ctx, client.ObjectKey{Name: name}, u)
	return u, err
}
