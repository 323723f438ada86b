package manager_test

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// gatekeeperConstraintEnforced is the check of Gatekeeper's end-to-end
// helper constraint_enforced (test/bats/helpers.bash), written again in Go
// with the addition of enforced: the constraint's status.byPod has,
// for each of webhookPods (the pods labeled gatekeeper.sh/operation=webhook
// there), exactly one entry whose operations contain webhook, that is
// enforced and at the constraint's generation; the number of such entries
// is the number of webhook pods, so a replica that does not run the
// webhook must not list it, and a webhook replica gone must not linger.
func gatekeeperConstraintEnforced(ctx context.Context, kind, name string, webhookPods []string) error {
	if len(webhookPods) == 0 {
		return fmt.Errorf("no webhook pods")
	}
	u, err := getConstraint(ctx, kind, name)
	if err != nil {
		return err
	}
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
	var ready []string
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		ops, _, _ := unstructured.NestedStringSlice(m, "operations")
		gen, _ := m["observedGeneration"].(int64)
		if slices.Contains(ops, "webhook") && gen == u.GetGeneration() && m["enforced"] == true {
			id, _ := m["id"].(string)
			ready = append(ready, id)
		}
	}
	slices.Sort(ready)
	want := slices.Sorted(slices.Values(webhookPods))
	if !slices.Equal(ready, want) {
		return fmt.Errorf("enforcing webhook entries %q, want one for each webhook pod %q: byPod %v", ready, want, list)
	}
	return nil
}
