package mutation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/mutation"
)

var _ expansion.Mutator = (*mutation.ExpansionMutator)(nil)

// podLabel is an AssignMetadata labeling Pods key: value, with extra
// lines under spec.match.
func podLabel(name, key, match string) string {
	return fmt.Sprintf(`
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: %s
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
%s  location: metadata.labels.%s
  parameters:
    assign:
      value: "yes"
`, name, match, key)
}

// podAssign sets spec.<field> on Pods, for the operations given ("" for
// none listed).
func podAssign(name, field, ops string) string {
	opsLine := ""
	if ops != "" {
		opsLine = "    operations: [" + ops + "]\n"
	}
	return fmt.Sprintf(`
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: %s
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
%s  location: spec.%s
  parameters:
    assign:
      value: "yes"
`, name, opsLine, field)
}

const expandDeploymentsYAML = `
apiVersion: expansion.gatekeeper.sh/v1alpha1
kind: ExpansionTemplate
metadata:
  name: expand-deployments
spec:
  applyTo:
  - groups: ["apps"]
    kinds: ["Deployment"]
    versions: ["v1"]
  templateSource: "spec.template"
  generatedGVK: {kind: Pod, group: "", version: v1}
`

const webDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team-a
spec:
  template:
    metadata:
      labels: {app: web}
    spec:
      containers: [{name: nginx, image: nginx}]
`

// expandWith expands webDeployment with expand-deployments and m, and
// returns its Pod.
func expandWith(t *testing.T, m expansion.Mutator) map[string]any {
	t.Helper()
	tmpl, err := expansion.FromUnstructured(obj(t, expandDeploymentsYAML))
	if err != nil {
		t.Fatal(err)
	}
	sys := expansion.NewSystem(m)
	if err := sys.Upsert(tmpl); err != nil {
		t.Fatal(err)
	}
	res, err := sys.Expand(context.Background(), obj(t, webDeployment), nil)
	if err != nil || len(res) != 1 {
		t.Fatalf("Expand = %v, %v; want one Pod", res, err)
	}
	return res[0].Object.Object
}

// TestExpansionMutator: through expansion.System, the resultant Pod gets
// the mutators whose match.source admits Generated (unset, All,
// Generated) and that apply to every operation, as Gatekeeper's
// expansion mutates resultants (source Generated, no operation); not
// those limited to Original resources or to one operation.
func TestExpansionMutator(t *testing.T) {
	off := mutation.NewOffline()
	for _, d := range []string{
		podLabel("any-source", "any", ""),
		podLabel("all-sources", "all", "    source: All\n"),
		podLabel("generated-only", "generated", "    source: Generated\n"),
		podLabel("original-only", "original", "    source: Original\n"),
		// The namespace is resolved as Offline.Mutate does: team-a is
		// given with its label.
		podLabel("team-a-only", "teama", "    namespaceSelector: {matchLabels: {team: a}}\n"),
		podAssign("every-op", "everyOp", ""),
		podAssign("star-op", "starOp", `"*"`),
		podAssign("both-ops", "bothOps", "CREATE, UPDATE"),
		podAssign("create-only", "createOnly", "CREATE"),
	} {
		if err := off.AddMutator(obj(t, d)); err != nil {
			t.Fatalf("AddMutator: %v", err)
		}
	}
	if _, err := off.AddNamespace(context.Background(), obj(t, "{apiVersion: v1, kind: Namespace, metadata: {name: team-a, labels: {team: a}}}")); err != nil {
		t.Fatal(err)
	}
	pod := expandWith(t, off.ForExpansion())
	labels, _ := field(t, &unstructured.Unstructured{Object: pod}, "metadata", "labels").(map[string]any)
	for key, want := range map[string]bool{"any": true, "all": true, "generated": true, "original": false, "teama": true} {
		if _, got := labels[key]; got != want {
			t.Errorf("label %q set %t, want %t (labels %v)", key, got, want, labels)
		}
	}
	spec, _ := pod["spec"].(map[string]any)
	for key, want := range map[string]bool{"everyOp": true, "starOp": true, "bothOps": true, "createOnly": false} {
		if _, got := spec[key]; got != want {
			t.Errorf("spec.%s set %t, want %t", key, got, want)
		}
	}
	// The original source's side: the same Offline mutates the
	// Deployment's own Pods, not its resultant.
	created := obj(t, "{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: team-a}, spec: {containers: [{name: c, image: i}]}}")
	if _, err := off.Mutate(context.Background(), created); err != nil {
		t.Fatal(err)
	}
	if l := created.GetLabels(); l["original"] != "yes" || l["generated"] != "" {
		t.Errorf("a created Pod's labels %v, want original and not generated", l)
	}
}

// TestExpansionMutatorSystem: a System's ExpansionMutator, with no
// namespace resolution, and its errors in the expansion's context.
func TestExpansionMutatorSystem(t *testing.T) {
	s := system(t, mutation.Options{}, podLabel("generated-only", "generated", "    source: Generated\n"))
	pod := expandWith(t, s.ForExpansion())
	if l := (&unstructured.Unstructured{Object: pod}).GetLabels(); l["generated"] != "yes" || l["app"] != "web" {
		t.Errorf("resultant labels %v, want generated and app", l)
	}
	// A namespaceSelector needs the Namespace, which a bare System does
	// not know: the expansion fails, naming the resultant and template.
	s = system(t, mutation.Options{}, podLabel("selector", "x", "    namespaceSelector: {matchLabels: {team: a}}\n"))
	tmpl, err := expansion.FromUnstructured(obj(t, expandDeploymentsYAML))
	if err != nil {
		t.Fatal(err)
	}
	sys := expansion.NewSystem(s.ForExpansion())
	if err := sys.Upsert(tmpl); err != nil {
		t.Fatal(err)
	}
	_, err = sys.Expand(context.Background(), obj(t, webDeployment), nil)
	if err == nil || !strings.Contains(err.Error(), `by ExpansionTemplate "expand-deployments"`) || !strings.Contains(err.Error(), `Namespace "team-a"`) {
		t.Errorf("Expand = %v, want the namespace error in the expansion's context", err)
	}
}
