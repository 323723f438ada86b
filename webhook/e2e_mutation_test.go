package webhook_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// mutatorEnforced reports, as an error until it holds, whether the
// harness's manager enforces the current generation of a mutator.
func mutatorEnforced(ctx context.Context, u *unstructured.Unstructured) error {
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(u.GroupVersionKind())
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), cur); err != nil {
		return err
	}
	list, _, _ := unstructured.NestedSlice(cur.Object, "status", "byPod")
	for _, e := range list {
		m, _ := e.(map[string]any)
		if m["id"] == "webhook-e2e" && m["enforced"] == true && m["observedGeneration"] == cur.GetGeneration() {
			return nil
		}
	}
	return fmt.Errorf("%s %s not enforced: %v", cur.GetKind(), cur.GetName(), cur.Object["status"])
}

// createMutator creates a mutator, deleted when the test ends, and waits
// until the manager enforces it.
func createMutator(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := createPolicy(t, doc)
	eventually(t, u.GetKind()+" "+u.GetName()+" to be enforced", func(ctx context.Context) error { return mutatorEnforced(ctx, u) })
	return u
}

func pod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
	}
}

// TestMutationE2E: the API server calls /v1/mutate before /v1/admit, so
// the validating webhook judges the mutated object: a Pod without the
// owner label a constraint requires is admitted once an AssignMetadata
// adds it, and refused when the mutator is gone.
func TestMutationE2E(t *testing.T) {
	needEnv(t)
	ctx := t.Context()
	const ns = "mut-e2e"
	mustCreate(t, env.Client, namespace(ns, map[string]string{"team": "a"}))
	createPolicy(t, ownerTemplate)
	createPolicy(t, constraint("K8sOwner", "pods-have-owners", "  match:\n    kinds:\n    - apiGroups: ['']\n      kinds: [Pod]\n    namespaces: ["+ns+"]\n"))
	eventually(t, "the owner constraint to refuse", func(ctx context.Context) error {
		return wantDenied(env.Client.Create(ctx, pod(ns, "probe"), client.DryRunAll), "[pods-have-owners] Pod probe has no owner")
	})

	m := createMutator(t, ownerLabel)
	created := pod(ns, "mutated")
	if err := env.Client.Create(ctx, created); err != nil {
		t.Fatalf("the mutated Pod was refused: %v", err)
	}
	got := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(created), got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["owner"] != ns {
		t.Errorf("stored labels %v, want owner: %s", got.Labels, ns)
	}
	if n := hook.logs.Count(`"Mutation failed"`); n != 0 {
		t.Errorf("%d mutations failed", n)
	}
	// Gatekeeper's metrics counted it: a request mutated, a System run of
	// two iterations (the label, then nothing).
	if m, ok := testenv.FindMetric(t, "gatekeeper_mutation_request_count", map[string]string{"mutation_status": "success"}); !ok || m.GetCounter().GetValue() < 1 {
		t.Errorf("gatekeeper_mutation_request_count{mutation_status=success} = %v", m)
	}
	if m, ok := testenv.FindMetric(t, "gatekeeper_mutation_system_iterations", map[string]string{"success": "true"}); !ok || m.GetHistogram().GetSampleCount() < 1 {
		t.Errorf("gatekeeper_mutation_system_iterations{success=true} = %v", m)
	}

	if err := env.Client.Delete(ctx, m); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Pod to be refused without the mutator", func(ctx context.Context) error {
		return wantDenied(env.Client.Create(ctx, pod(ns, "unmutated"), client.DryRunAll), "[pods-have-owners] Pod unmutated has no owner")
	})
}

// TestMutationErrorE2E: a mutation error refuses the request with
// the error, as Gatekeeper's webhook does.
func TestMutationErrorE2E(t *testing.T) {
	needEnv(t)
	createMutator(t, `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: e2e-bad-shape
spec:
  applyTo:
  - groups: [""]
    kinds: ["ConfigMap"]
    versions: ["v1"]
  match:
    namespaces: [mut-e2e-error]
  location: data.key.sub
  parameters:
    assign:
      value: x
`)
	mustCreate(t, env.Client, namespace("mut-e2e-error", nil))
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "mut-e2e-error", Name: "cm"}, Data: map[string]string{"key": "value"}}
	err := env.Client.Create(t.Context(), cm)
	if err == nil || !strings.Contains(err.Error(), "for mutator Assign.mutations.gatekeeper.sh /e2e-bad-shape failed for  ConfigMap mut-e2e-error cm: data.key: the object has a string there, not an object") {
		t.Errorf("Create = %v, want the mutation error", err)
	}
	if apierrors.IsNotFound(env.Client.Get(t.Context(), client.ObjectKeyFromObject(cm), &corev1.ConfigMap{})) == false {
		t.Error("the ConfigMap was stored")
	}
}
