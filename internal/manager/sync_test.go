package manager_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// requireNetworkPolicy is a referential template: pods labeled app=prop
// need a NetworkPolicy in their namespace whose podSelector selects them.
const requireNetworkPolicyRego = `package requirenetworkpolicy

violation[{"msg": msg}] {
  input.review.object.kind == "Pod"
  labels := object.get(input.review.object.metadata, "labels", {})
  labels.app == "prop"
  ns := input.review.object.metadata.namespace
  not protected(ns, labels)
  msg := sprintf("pod %v/%v is selected by no NetworkPolicy", [ns, input.review.object.metadata.name])
}

protected(ns, labels) {
  np := data.inventory.namespace[ns]["networking.k8s.io/v1"]["NetworkPolicy"][_]
  selects(np.spec.podSelector, labels)
}

# Only matchLabels: a selector with matchExpressions selects nothing here.
selects(sel, labels) {
  want := object.get(sel, "matchLabels", {})
  count({k | want[k] == labels[k]}) == count(want)
  not sel.matchExpressions
}
`

// uniqueIngressHostRego refuses an Ingress whose host another Ingress, in
// any namespace, already uses.
const uniqueIngressHostRego = `package uniqueingresshost

violation[{"msg": msg}] {
  input.review.object.kind == "Ingress"
  host := input.review.object.spec.rules[_].host
  other := data.inventory.namespace[ns][_]["Ingress"][name]
  other.spec.rules[_].host == host
  not same(ns, name)
  msg := sprintf("host %v is already used by Ingress %v/%v", [host, ns, name])
}

same(ns, name) {
  input.review.object.metadata.namespace == ns
  input.review.object.metadata.name == name
}
`

func networkPolicy(ns, name, app string) string {
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: %s
  namespace: %s
spec:
  podSelector:
    matchLabels:
      app: %s
  policyTypes: [Ingress]
`, name, ns, app)
}

func ingress(ns, name, host string) string {
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  namespace: %s
spec:
  rules:
  - host: %s
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
`, name, ns, host)
}

// waitReady waits for the manager's readiness, which includes the first
// sync of every kind listed at startup.
func waitReady(t *testing.T, m *running) {
	t.Helper()
	eventually(t, "the manager to be ready", func(context.Context) (bool, error) {
		err := m.Ready()
		return err == nil, err
	})
}

// loadPolicy applies a template and its constraint and waits until the
// engine enforces them.
func loadPolicy(t *testing.T, m *running, kind, rego string) {
	t.Helper()
	apply(t, template(strings.ToLower(kind), kind, regoTarget(rego)))
	apply(t, plainConstraint(kind, "sync-test"))
	eventually(t, kind+" to be enforced", func(ctx context.Context) (bool, error) {
		return constraintEnforced(ctx, kind, "sync-test", m.podID)
	})
}

// TestSyncNetworkPolicy: with NetworkPolicies synced, a pod app=prop needs
// a NetworkPolicy selecting it.
func TestSyncNetworkPolicy(t *testing.T) {
	const ns = "sync-np"
	testenv.EnsureNamespaces(t, env.Client, manager.DefaultNamespace, ns)
	apply(t, syncConfig(manager.DefaultNamespace, "config", []schema.GroupVersionKind{networkPolicyGVK}))
	apply(t, networkPolicy(ns, "other", "other")) // there before the manager
	m := startManager(t, startOpts{})

	waitReady(t, m)
	// Readiness waited for the first sync: the NetworkPolicy is there.
	if n, synced := m.Sync().Count(networkPolicyGVK); n != 1 || !synced {
		t.Fatalf("when ready, NetworkPolicies in the inventory = %d (synced %v), want 1 (true)", n, synced)
	}

	loadPolicy(t, m, "SyncRequireNetworkPolicy", requireNetworkPolicyRego)
	pod := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: prop\n  namespace: %s\n  labels: {app: prop}\nspec:\n  containers: [{name: c, image: nginx}]\n", ns)
	violations := func(ctx context.Context) ([]string, error) { return review(ctx, m.Engine(), pod) }

	t.Run("no NetworkPolicy selects the pod", func(t *testing.T) {
		msgs, err := violations(t.Context())
		if err != nil || len(msgs) != 1 {
			t.Fatalf("violations = %q (err %v), want one", msgs, err)
		}
	})
	t.Run("a NetworkPolicy selecting app=backend only", func(t *testing.T) {
		apply(t, networkPolicy(ns, "backend", "backend"))
		eventually(t, "the backend NetworkPolicy to be synced", func(context.Context) (bool, error) {
			n, _ := m.Sync().Count(networkPolicyGVK)
			return n == 2, fmt.Errorf("%d NetworkPolicies in the inventory", n)
		})
		msgs, err := violations(t.Context())
		if err != nil || len(msgs) != 1 {
			t.Fatalf("violations = %q (err %v), want still one", msgs, err)
		}
	})
	t.Run("a NetworkPolicy selecting app=prop", func(t *testing.T) {
		apply(t, networkPolicy(ns, "prop", "prop"))
		eventually(t, "the pod to be admitted", func(ctx context.Context) (bool, error) {
			msgs, err := violations(ctx)
			return err == nil && len(msgs) == 0, fmt.Errorf("violations %q, err %v", msgs, err)
		})
	})
}

// TestSyncIngressHost: no two Ingresses may use the same host, across
// namespaces; deleting the first frees the host.
func TestSyncIngressHost(t *testing.T) {
	testenv.EnsureNamespaces(t, env.Client, manager.DefaultNamespace, "sync-ing-a", "sync-ing-b")
	apply(t, syncConfig(manager.DefaultNamespace, "config", []schema.GroupVersionKind{ingressGVK}))
	m := startManager(t, startOpts{})
	waitReady(t, m)
	loadPolicy(t, m, "SyncUniqueIngressHost", uniqueIngressHostRego)

	first := apply(t, ingress("sync-ing-a", "first", "shop.example.com"))[0]
	eventually(t, "the first Ingress to be synced", func(context.Context) (bool, error) {
		n, _ := m.Sync().Count(ingressGVK)
		return n == 1, fmt.Errorf("%d Ingresses in the inventory", n)
	})
	second := ingress("sync-ing-b", "second", "shop.example.com")
	msgs, err := review(t.Context(), m.Engine(), second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("second Ingress: violations = %q (err %v), want one", msgs, err)
	}
	// The first one, reviewed again (an update), does not conflict with itself.
	if msgs, err := review(t.Context(), m.Engine(), ingress("sync-ing-a", "first", "shop.example.com")); err != nil || len(msgs) != 0 {
		t.Fatalf("first Ingress: violations = %q (err %v), want none", msgs, err)
	}

	deleteAndWait(t, first)
	deleted := time.Now()
	eventually(t, "the host to be free", func(ctx context.Context) (bool, error) {
		msgs, err := review(ctx, m.Engine(), second)
		return err == nil && len(msgs) == 0, fmt.Errorf("violations %q, err %v", msgs, err)
	})
	t.Logf("Host freed %s after the first Ingress was deleted", time.Since(deleted).Round(time.Millisecond))
}
