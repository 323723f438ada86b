package audit_test

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// expandDeployments is Gatekeeper's example ExpansionTemplate, with an
// optional enforcementAction override.
func expandDeployments(name, action string) string {
	s := fmt.Sprintf(`apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata:
  name: %s
spec:
  applyTo:
  - groups: [apps]
    kinds: [Deployment, ReplicaSet]
    versions: [v1]
  templateSource: spec.template
  generatedGVK: {group: "", version: v1, kind: Pod}
`, name)
	if action != "" {
		s += "  enforcementAction: " + action + "\n"
	}
	return s
}

// waitExpansionLoaded waits until the shared manager reports the
// ExpansionTemplate loaded: its byPod entry, for this generation, without
// errors.
func waitExpansionLoaded(t *testing.T, name string) {
	t.Helper()
	eventually(t, "ExpansionTemplate "+name+" to be loaded", func(ctx context.Context) (bool, error) {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("expansion.gatekeeper.sh/v1beta1")
		u.SetKind("ExpansionTemplate")
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
			return false, err
		}
		byPod, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
		for _, e := range byPod {
			m, _ := e.(map[string]any)
			if m["id"] == podID && fmt.Sprint(m["observedGeneration"]) == fmt.Sprint(u.GetGeneration()) && m["templateUID"] == string(u.GetUID()) {
				if m["errors"] != nil {
					return false, fmt.Errorf("errors %v", m["errors"])
				}
				return true, nil
			}
		}
		return false, fmt.Errorf("byPod %v", byPod)
	})
}

// TestAuditExpansion: as in Gatekeeper (pkg/audit/manager.go reviewObjects,
// and its "gatekeeper expansion test" __expansion_audit_test), the audit
// expands the workloads it lists: a Deployment whose Pod template a Pod
// constraint refuses is a violation of that constraint, against the
// Deployment, "[Implied by <template>] ...", with the template's
// enforcementAction override.
func TestAuditExpansion(t *testing.T) {
	const ns = "audit-expansion"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	apply(t, requiredLabel("K8sAuditPodOwner"))
	c := apply(t, fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sAuditPodOwner
metadata:
  name: pods-need-owner
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
    namespaces: [%s]
  parameters:
    label: owner
`, ns))[0]
	waitEnforced(t, c)
	apply(t, expandDeployments("audit-expand-deployments", "warn"))
	waitExpansionLoaded(t, "audit-expand-deployments")
	apply(t, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: no-owner
  namespace: %[1]s
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata:
      labels: {app: x}
    spec:
      containers: [{name: c, image: busybox}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: owned
  namespace: %[1]s
spec:
  selector: {matchLabels: {app: b}}
  template:
    metadata:
      labels: {app: b, owner: alice}
    spec:
      containers: [{name: c, image: busybox}]
`, ns))

	runOnce(t, newAuditor(t, testOptions(), mgr.Reviewer()))
	s := readStatus(t, "K8sAuditPodOwner", "pods-need-owner")
	if s.total != 1 || len(s.violations) != 1 {
		t.Fatalf("totalViolations %d, violations %+v; want the Deployment without owner only", s.total, s.violations)
	}
	v := s.violations[0]
	want := "[Implied by audit-expand-deployments] Pod no-owner-pod has no label owner"
	if v.Kind != "Deployment" || v.Group != "apps" || v.Namespace != ns || v.Name != "no-owner" || v.Message != want || v.EnforcementAction != "warn" {
		t.Errorf("violation %+v\nwant the Deployment %s/no-owner, %q, warn (the template's override)", v, ns, want)
	}

	// Without expansion (the engine alone), the Deployment is no violation.
	runOnce(t, newAuditor(t, testOptions(), nil))
	if s := readStatus(t, "K8sAuditPodOwner", "pods-need-owner"); s.total != 0 {
		t.Errorf("without expansion: totalViolations %d, %+v", s.total, s.violations)
	}
}

// TestAuditExpansionFails: an object that cannot be expanded (its
// ExpansionTemplate's templateSource is missing) keeps its own violations
// (review finding 7); the failure counts as a review error.
func TestAuditExpansionFails(t *testing.T) {
	const ns = "audit-expansion-fails"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	apply(t, requiredLabel("K8sAuditExpFails"))
	c := apply(t, constraint("K8sAuditExpFails", "cms-need-owner", ns, "deny"))[0]
	waitEnforced(t, c)
	apply(t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: no-owner\n  namespace: "+ns+"\n")
	sys := expansion.NewSystem(nil)
	tm, err := expansion.FromUnstructured(testenv.Parse(t, `apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata:
  name: expand-configmaps
spec:
  applyTo:
  - groups: [""]
    kinds: [ConfigMap]
    versions: [v1]
  templateSource: spec.template
  generatedGVK: {group: "", version: v1, kind: Pod}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Upsert(tm); err != nil {
		t.Fatal(err)
	}

	rep := runOnce(t, newAuditor(t, testOptions(), &expansion.Reviewer{Engine: mgr.Engine(), System: sys}))
	s := readStatus(t, "K8sAuditExpFails", "cms-need-owner")
	if s.total != 1 || len(s.violations) != 1 || s.violations[0].Name != "no-owner" || s.violations[0].Message != "ConfigMap no-owner has no label owner" {
		t.Errorf("totalViolations %d, violations %+v; want the ConfigMap's own violation", s.total, s.violations)
	}
	if rep.ReviewErrors == 0 {
		t.Error("the failed expansion counts as no review error")
	}
}
