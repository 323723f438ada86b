package webhook_test

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// The policies of TestExpansionMutationE2E: Pods of expMutNamespace must
// run as non-root; Deployments expand into Pods; an Assign sets
// runAsNonRoot on Pods of one source.
const (
	expMutNamespace = "exp-mut"

	nonRootTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8spodnonroot
spec:
  crd:
    spec:
      names:
        kind: K8sPodNonRoot
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8spodnonroot
      violation[{"msg": msg}] {
        not input.review.object.spec.securityContext.runAsNonRoot
        msg := sprintf("Pod %v must set spec.securityContext.runAsNonRoot", [input.review.object.metadata.name])
      }
`
	nonRootConstraint = `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sPodNonRoot
metadata:
  name: pods-run-as-non-root
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["Pod"]
    namespaces: ["` + expMutNamespace + `"]
`
	expandMutDeployments = `
apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata:
  name: expand-mut-deployments
spec:
  applyTo:
  - groups: ["apps"]
    kinds: ["Deployment"]
    versions: ["v1"]
  templateSource: "spec.template"
  generatedGVK: {kind: Pod, group: "", version: v1}
`
	// nonRootMutator is Gatekeeper's expansion documentation's pattern:
	// a mutator with source Generated mimics, on the Pods expansion
	// generates, what the cluster would add to the real ones.
	nonRootMutator = `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: generated-pods-non-root
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  match:
    source: Generated
    namespaces: ["` + expMutNamespace + `"]
  location: spec.securityContext.runAsNonRoot
  parameters:
    assign:
      value: true
`
)

func rootDeployment(t *testing.T) *unstructured.Unstructured {
	return testenv.Parse(t, `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: `+expMutNamespace+`
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers: [{name: nginx, image: nginx}]
`)
}

// TestExpansionMutationE2E: through the real kube-apiserver, the mutators
// apply to what a Deployment expands into before the validating webhook
// judges it, as in Gatekeeper: a Deployment whose Pod template lacks
// runAsNonRoot is admitted by a Pod policy requiring it once a mutator
// with source Generated sets it on the resultant, while real Pods, which
// that mutator leaves alone, are still refused; with source Original, the
// mutator sets it on real Pods and no longer on the resultant.
func TestExpansionMutationE2E(t *testing.T) {
	needEnv(t)
	ctx := t.Context()
	mustCreate(t, env.Client, namespace(expMutNamespace, nil))
	createPolicy(t, nonRootTemplate)
	createPolicy(t, nonRootConstraint)
	eventually(t, "the constraint to refuse a root Pod", func(ctx context.Context) error {
		return wantDenied(env.Client.Create(ctx, pod(expMutNamespace, "root"), client.DryRunAll), "[pods-run-as-non-root] Pod root must set spec.securityContext.runAsNonRoot")
	})
	createPolicy(t, expandMutDeployments)
	const implied = "[pods-run-as-non-root] [Implied by expand-mut-deployments] Pod web-pod must set spec.securityContext.runAsNonRoot"
	eventually(t, "the Deployment to be refused for its Pod", func(ctx context.Context) error {
		return wantDenied(env.Client.Create(ctx, rootDeployment(t), client.DryRunAll), implied)
	})

	m := createMutator(t, nonRootMutator)
	t.Run("source Generated mutates the resultant", func(t *testing.T) {
		eventually(t, "the Deployment to be admitted", func(ctx context.Context) error {
			return env.Client.Create(ctx, rootDeployment(t), client.DryRunAll)
		})
		// The Deployment itself is stored as given.
		d := rootDeployment(t)
		if err := env.Client.Create(ctx, d, client.DryRunAll); err != nil {
			t.Fatal(err)
		}
		if sc, found, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "template", "spec", "securityContext", "runAsNonRoot"); found {
			t.Errorf("the Deployment's Pod template was mutated: runAsNonRoot %v", sc)
		}
		if err := wantDenied(env.Client.Create(ctx, pod(expMutNamespace, "root"), client.DryRunAll), "[pods-run-as-non-root] Pod root must set"); err != nil {
			t.Errorf("a real Pod, which a Generated mutator leaves alone: %v", err)
		}
	})

	t.Run("source Original leaves the resultant", func(t *testing.T) {
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(m.GroupVersionKind())
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(m), cur); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(cur.Object, "Original", "spec", "match", "source"); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the mutator's new generation to be enforced", func(ctx context.Context) error { return mutatorEnforced(ctx, cur) })
		eventually(t, "the Deployment to be refused again", func(ctx context.Context) error {
			return wantDenied(env.Client.Create(ctx, rootDeployment(t), client.DryRunAll), implied)
		})
		p := pod(expMutNamespace, "mutated")
		if err := env.Client.Create(ctx, p, client.DryRunAll); err != nil {
			t.Fatalf("a real Pod, mutated before it is judged, was refused: %v", err)
		}
		if sc := p.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("the Pod admitted has securityContext %+v, want runAsNonRoot: true", sc)
		}
	})
	if t.Failed() {
		t.Logf("manager logs:\n%s", hook.logs.String())
	}
}
