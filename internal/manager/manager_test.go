package manager_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestMain starts one control plane for the package. Set
// PORTCULLIS_TEST_LOG=1 to see the managers' logs.
func TestMain(m *testing.M) {
	testenv.Logging(nil)
	os.Exit(testenv.Main{
		What:  "the manager's envtest tests",
		Start: func(e *testenv.Env) (func() error, error) { env, objects.Client = e, e.Client; return nil, nil },
	}.Run(m))
}

// requiredLabels is a template whose constraints list labels objects must
// carry; kind names it, and apiVersion picks the template version.
func requiredLabels(apiVersion, kind string) string {
	return fmt.Sprintf(`apiVersion: templates.gatekeeper.sh/%s
kind: ConstraintTemplate
metadata:
  name: %s
spec:
  crd:
    spec:
      names:
        kind: %s
      validation:
        openAPIV3Schema:
          type: object
          properties:
            labels:
              type: array
              items:
                type: string
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package requiredlabels

      violation[{"msg": msg}] {
        provided := {l | input.review.object.metadata.labels[l]}
        required := {l | l := input.parameters.labels[_]}
        missing := required - provided
        count(missing) > 0
        msg := sprintf("missing required labels: %%v", [missing])
      }
`, apiVersion, strings.ToLower(kind), kind)
}

func constraint(kind, name, action string, labels ...string) string {
	return fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: %s
metadata:
  name: %s
spec:
  enforcementAction: %s
  parameters:
    labels: [%s]
`, kind, name, action, strings.Join(labels, ", "))
}

const pod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  labels:
    owner: me
spec:
  containers:
  - name: web
    image: nginx
`

// TestTemplateLifecycle applies a template and a constraint, changes both,
// and deletes the template.
func TestTemplateLifecycle(t *testing.T) {
	m := startManager(t, startOpts{})
	ctx := t.Context()
	const kind = "K8sLifecycleLabels"
	name := strings.ToLower(kind)
	crdName := name + ".constraints.gatekeeper.sh"
	tmpl := apply(t, requiredLabels("v1", kind))[0]

	t.Run("CRD established", func(t *testing.T) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		eventually(t, "the constraint CRD to be established", func(ctx context.Context) (bool, error) {
			if err := env.Client.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
				return false, err
			}
			return crdIsEstablished(crd), nil
		})
		ref := crd.OwnerReferences
		if len(ref) != 1 || ref[0].UID != tmpl.GetUID() || ref[0].Controller == nil || !*ref[0].Controller {
			t.Errorf("owner references = %+v, want the template %s (uid %s) as controller", ref, name, tmpl.GetUID())
		}
		if got := crd.Spec.Names.Categories; strings.Join(got, ",") != "constraint,constraints" {
			t.Errorf("categories = %v, want [constraint constraints]", got)
		}
		served := map[string]bool{}
		for _, v := range crd.Spec.Versions {
			served[v.Name] = v.Served
		}
		if !served["v1beta1"] || !served["v1alpha1"] {
			t.Errorf("served versions = %v, want v1beta1 and v1alpha1", served)
		}
		eventually(t, "the template to be Ready", func(ctx context.Context) (bool, error) {
			return templateLoaded(ctx, name, m.podID)
		})
		out := env.Kubectl(t, "wait", "--for=condition=Ready", "--timeout=60s", "constrainttemplate/"+name)
		if !strings.Contains(out, "condition met") {
			t.Errorf("kubectl wait: %s", out)
		}
	})

	apply(t, constraint(kind, "must-have-team", "dryrun", "team"))
	eventually(t, "the constraint to be enforced", func(ctx context.Context) (bool, error) {
		return constraintEnforced(ctx, kind, "must-have-team", m.podID)
	})

	t.Run("kubectl get constraints", func(t *testing.T) {
		checkConstraintsTable(t, "must-have-team", "dryrun")
		out := env.Kubectl(t, "get", "constraints")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 2 || !strings.Contains(lines[0], "ENFORCEMENT-ACTION") || !strings.Contains(lines[0], "TOTAL-VIOLATIONS") {
			t.Fatalf("kubectl get constraints: want ENFORCEMENT-ACTION and TOTAL-VIOLATIONS columns, got\n%s", out)
		}
		if !strings.Contains(out, "must-have-team") || !strings.Contains(out, "dryrun") {
			t.Errorf("kubectl get constraints: no row for must-have-team with dryrun:\n%s", out)
		}
	})

	t.Run("parameters update", func(t *testing.T) {
		eventually(t, "a violation for the missing label team", func(ctx context.Context) (bool, error) {
			msgs, err := review(ctx, m.Engine(), pod)
			return len(msgs) == 1 && strings.Contains(msgs[0], `"team"`), fmt.Errorf("violations %q, err %v", msgs, err)
		})
		u, err := testenv.GetConstraint(ctx, env.Client, kind, "must-have-team")
		if err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedStringSlice(u.Object, []string{"team", "cost-center"}, "spec", "parameters", "labels"); err != nil {
			t.Fatal(err)
		}
		updated := time.Now()
		if err := env.Client.Update(ctx, u); err != nil {
			t.Fatalf("updating the constraint: %v", err)
		}
		eventually(t, "the engine to review with the new parameters", func(ctx context.Context) (bool, error) {
			msgs, err := review(ctx, m.Engine(), pod)
			return len(msgs) == 1 && strings.Contains(msgs[0], `"cost-center"`), fmt.Errorf("violations %q, err %v", msgs, err)
		})
		t.Logf("New parameters in effect in the engine %s after the update", time.Since(updated).Round(time.Millisecond))
		eventually(t, "the constraint to report the new generation", func(ctx context.Context) (bool, error) {
			return constraintEnforced(ctx, kind, "must-have-team", m.podID)
		})
	})

	t.Run("template update", func(t *testing.T) {
		u, err := getTemplate(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		props := map[string]any{
			"labels":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			"message": map[string]any{"type": "string"},
		}
		if err := unstructured.SetNestedMap(u.Object, props, "spec", "crd", "spec", "validation", "openAPIV3Schema", "properties"); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Update(ctx, u); err != nil {
			t.Fatalf("updating the template: %v", err)
		}
		eventually(t, "the CRD schema to follow the new parameters", func(ctx context.Context) (bool, error) {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
				return false, err
			}
			for _, v := range crd.Spec.Versions {
				params := v.Schema.OpenAPIV3Schema.Properties["spec"].Properties["parameters"]
				if _, ok := params.Properties["message"]; !ok {
					return false, fmt.Errorf("version %s: parameters have no message property yet", v.Name)
				}
			}
			return true, nil
		})
		eventually(t, "the template to be Ready at its new generation", func(ctx context.Context) (bool, error) {
			return templateLoaded(ctx, name, m.podID)
		})
		msgs, err := review(ctx, m.Engine(), pod)
		if err != nil || len(msgs) != 1 {
			t.Errorf("after the template update, violations = %q (err %v), want the constraint still enforced", msgs, err)
		}
	})

	t.Run("template delete", func(t *testing.T) {
		deleteAndWait(t, tmpl)
		eventually(t, "the engine to drop the template", func(ctx context.Context) (bool, error) {
			if slices.Contains(m.Engine().TemplateKinds(), kind) {
				return false, fmt.Errorf("engine still holds %v", m.Engine().TemplateKinds())
			}
			return !m.Watches().Watching(kind), fmt.Errorf("still watching %s", kind)
		})
		msgs, err := review(ctx, m.Engine(), pod)
		if err != nil || len(msgs) != 0 {
			t.Errorf("after the template was deleted, violations = %q (err %v), want none", msgs, err)
		}
		if _, n := m.Engine().Counts(); n != 0 {
			t.Errorf("engine holds %d constraints, want 0", n)
		}
		_, err = testenv.GetConstraint(ctx, env.Client, kind, "must-have-team")
		if err == nil || (!apierrors.IsNotFound(err) && !isNoMatch(err)) {
			t.Errorf("constraint still readable after its template was deleted: %v", err)
		}
	})
}

func crdIsEstablished(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}
