package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestReferentialPolicies runs the library's referential policies through
// kube-apiserver, the manager's webhook and the audit.
func TestReferentialPolicies(t *testing.T) {
	if env == nil {
		t.Skip("Skipping: no envtest control plane (run `make envtest-assets`)")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(root, "templates")

	// Sync the kinds the policies read.
	createObj(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manager.DefaultNamespace}}, true)
	createObj(t, testenv.Parse(t, `
apiVersion: config.gatekeeper.sh/v1alpha1
kind: Config
metadata:
  name: config
  namespace: `+manager.DefaultNamespace+`
spec:
  sync:
    syncOnly:
    - {group: networking.k8s.io, version: v1, kind: NetworkPolicy}
    - {group: networking.k8s.io, version: v1, kind: Ingress}
`), false)

	t.Run("RequiredNetworkPolicy", func(t *testing.T) {
		applyPolicies(t, filepath.Join(lib, "requirednetworkpolicy", "template.yaml"),
			filepath.Join(lib, "requirednetworkpolicy", "samples", "prop-pods-need-networkpolicy", "constraint.yaml"))
		const constraint = "prop-pods-need-networkpolicy"
		waitEnforced(t, "PcRequiredNetworkPolicy", constraint)
		ns := namespace(t, "e2e-rnp")
		pod := func() client.Object {
			return &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "prop", Namespace: ns, Labels: map[string]string{"app": "prop"}},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: new(false),
					Containers:                   []corev1.Container{{Name: "c", Image: "registry.example.com/prop:1"}},
				},
			}
		}
		eventuallyRefused(t, "the Pod without a NetworkPolicy", pod, constraint)

		createObj(t, netpol(ns, "backend-only", map[string]string{"app": "backend"}, nil), false)
		staysRefused(t, "the Pod with a NetworkPolicy for app=backend only", pod, constraint)

		createObj(t, netpol(ns, "prop", map[string]string{"app": "prop"}, nil), false)
		eventuallyAdmitted(t, "the Pod with a NetworkPolicy for app=prop", pod)
	})

	t.Run("NetworkPolicyIngressFrom", func(t *testing.T) {
		applyPolicies(t, filepath.Join(lib, "networkpolicyingressfrom", "template.yaml"),
			filepath.Join(lib, "networkpolicyingressfrom", "samples", "prop-ingress-from-frontend", "constraint.yaml"))
		const constraint = "prop-ingress-only-from-frontend"
		waitEnforced(t, "PcNetworkPolicyIngressFrom", constraint)
		ns := namespace(t, "e2e-npif")
		eventuallyRefused(t, "a policy for app=prop allowing tier=test", func() client.Object {
			return netpol(ns, "from-test", map[string]string{"app": "prop"}, map[string]string{"tier": "test"})
		}, constraint)
		eventuallyAdmitted(t, "a policy for app=prop allowing app=frontend", func() client.Object {
			return netpol(ns, "from-frontend", map[string]string{"app": "prop"}, map[string]string{"app": "frontend"})
		})
	})

	t.Run("UniqueIngressHost", func(t *testing.T) {
		applyPolicies(t, filepath.Join(lib, "uniqueingresshost", "template.yaml"),
			filepath.Join(lib, "uniqueingresshost", "samples", "unique-ingress-host", "constraint.yaml"))
		const constraint = "unique-ingress-host"
		waitEnforced(t, "PcUniqueIngressHost", constraint)
		ns1, ns2 := namespace(t, "e2e-uih"), namespace(t, "e2e-uih")
		const host = "x.example.com"
		a := ingress(ns1, "a", host)
		eventuallyAdmitted(t, "Ingress A", func() client.Object { return ingress(ns1, "a", host) })
		b := func() client.Object { return ingress(ns2, "b", host) }
		eventuallyRefused(t, "Ingress B with A's host", b, constraint)
		if err := env.Client.Delete(t.Context(), a); err != nil {
			t.Fatalf("deleting Ingress A: %v", err)
		}
		eventuallyAdmitted(t, "Ingress B once A is gone", b)
	})

	t.Run("AuditDefaultDeny", func(t *testing.T) {
		ns := namespace(t, "e2e-nodeny")
		applyPolicies(t, filepath.Join(lib, "defaultdenynetworkpolicy", "template.yaml"),
			filepath.Join(lib, "defaultdenynetworkpolicy", "samples", "audit-default-deny", "constraint.yaml"))
		const kind, constraint = "PcDefaultDenyNetworkPolicy", "namespaces-default-deny"
		waitEnforced(t, kind, constraint)

		aopts := audit.NewOptions()
		aopts.Interval = 0
		aopts.ViolationsLimit = 100
		a, err := audit.New(env.Config, mgr.Engine(), aopts, ctrl.Log.WithName("e2e-audit"))
		if err != nil {
			t.Fatalf("audit.New: %v", err)
		}
		eventually(t, "the audit to report namespace "+ns, func(ctx context.Context) error {
			if _, err := a.RunOnce(ctx); err != nil {
				return fmt.Errorf("RunOnce: %w", err)
			}
			c := constraintObj(kind, constraint)
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
				return err
			}
			total, _, _ := unstructured.NestedInt64(c.Object, "status", "totalViolations")
			vs, _, _ := unstructured.NestedSlice(c.Object, "status", "violations")
			var names []string
			for _, v := range vs {
				if m, ok := v.(map[string]any); ok {
					n, _ := m["name"].(string)
					names = append(names, n)
				}
			}
			if total < 1 {
				return fmt.Errorf("totalViolations %d, violations %v", total, names)
			}
			if slices.Contains(names, ns) {
				return nil
			}
			return fmt.Errorf("totalViolations %d, violations %v: no %s", total, names, ns)
		})
	})
}

// createObj creates obj, retrying while its kind is not served yet, and
// deletes it when the test ends unless keep is set.
func createObj(t *testing.T, obj client.Object, keep bool) {
	t.Helper()
	testenv.Create(t, env.Client, obj, waitTimeout)
	if keep {
		return
	}
	t.Cleanup(func() {
		if err := env.Client.Delete(context.Background(), obj); client.IgnoreNotFound(err) != nil && !meta.IsNoMatchError(err) {
			t.Errorf("deleting %T %s: %v", obj, obj.GetName(), err)
		}
	})
}

// applyPolicies creates every object of the files, in order; each is deleted
// when the test ends, in reverse order.
func applyPolicies(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		docs, err := manifest.ReadPath(p, nil)
		if err != nil {
			t.Fatalf("reading %s: %v", p, err)
		}
		for _, d := range docs {
			createObj(t, d.Object, false)
		}
	}
}

func constraintObj(kind, name string) *unstructured.Unstructured {
	c := &unstructured.Unstructured{}
	c.SetAPIVersion("constraints.gatekeeper.sh/v1beta1")
	c.SetKind(kind)
	c.SetName(name)
	return c
}

// waitEnforced waits until the manager reports the constraint enforced.
func waitEnforced(t *testing.T, kind, name string) {
	t.Helper()
	testenv.WaitEnforced(t, poll, env.Client, kind, name, podID)
}

// namespace creates a namespace with a unique name.
func namespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + rand.String(5)}}
	createObj(t, ns, false)
	return ns.Name
}

func netpol(ns, name string, selects, from map[string]string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selects},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	if from != nil {
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: from}}},
		}}
	}
	return np
}

func ingress(ns, name, host string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{
					Path:     "/",
					PathType: &prefix,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80},
					}},
				}},
			}},
		}}},
	}
}

// eventually polls cond until it holds, failing with its last error after
// waitTimeout.
func eventually(t *testing.T, what string, cond func(ctx context.Context) error) {
	t.Helper()
	testenv.Eventually(t, poll, what, cond)
}

// refusal classifies a create: nil when the webhook refused it naming the
// constraint; an error otherwise. A create that succeeds is deleted.
func refusal(ctx context.Context, obj client.Object, constraint string) (created bool, err error) {
	err = env.Client.Create(ctx, obj)
	if err == nil {
		_ = env.Client.Delete(context.Background(), obj)
		return true, fmt.Errorf("admitted")
	}
	if !strings.Contains(err.Error(), "["+constraint+"]") {
		return false, fmt.Errorf("refused, but not by [%s]: %w", constraint, err)
	}
	return false, nil
}

// eventuallyRefused polls until creating the object is refused by the
// constraint (the engine and the sync catch up).
func eventuallyRefused(t *testing.T, what string, obj func() client.Object, constraint string) {
	t.Helper()
	eventually(t, what+" to be refused by "+constraint, func(ctx context.Context) error {
		_, err := refusal(ctx, obj(), constraint)
		return err
	})
	// The message, for the log.
	if err := env.Client.Create(t.Context(), obj()); err != nil {
		t.Logf("%s: %v", what, err)
	}
}

// staysRefused lets the sync catch up for a few seconds, asserting that
// every attempt meanwhile is refused by the constraint.
func staysRefused(t *testing.T, what string, obj func() client.Object, constraint string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := refusal(t.Context(), obj(), constraint); err != nil {
			t.Fatalf("%s: want refused by [%s]: %v", what, constraint, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// eventuallyAdmitted polls until creating the object succeeds; it is
// deleted when the test ends.
func eventuallyAdmitted(t *testing.T, what string, obj func() client.Object) {
	t.Helper()
	var o client.Object
	eventually(t, what+" to be admitted", func(ctx context.Context) error {
		o = obj()
		err := env.Client.Create(ctx, o)
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
}
