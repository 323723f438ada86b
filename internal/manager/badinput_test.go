package manager_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// template returns a template of kind with the given Rego and targets
// (YAML list items under spec.targets).
func template(name, kind, targets string) string {
	return fmt.Sprintf(`apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: %s
spec:
  crd:
    spec:
      names:
        kind: %s
  targets:
%s`, name, kind, targets)
}

func regoTarget(rego string) string {
	var b strings.Builder
	b.WriteString("  - target: admission.k8s.gatekeeper.sh\n    rego: |\n")
	for l := range strings.SplitSeq(strings.TrimRight(rego, "\n"), "\n") {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

const okRego = `package ok

violation[{"msg": "denied"}] {
  input.review.object.metadata.labels.deny == "true"
}
`

// brokenRego calls a function that does not exist, on line 4, column 10.
const brokenRego = `package broken

violation[{"msg": msg}] {
  msg := no_such_function(input.review.object)
}
`

// TestBadInput applies templates and constraints that cannot be loaded,
// beside good ones: each reports why in its status, and the good ones work.
func TestBadInput(t *testing.T) {
	m := startManager(t, startOpts{})
	apply(t, template("k8sbrokenrego", "K8sBrokenRego", regoTarget(brokenRego)))
	apply(t, requiredLabels("v1", "K8sGoodBeside"))

	t.Run("Rego that does not compile", func(t *testing.T) {
		var e map[string]any
		eventually(t, "an ingest_error on the broken template", func(ctx context.Context) (bool, error) {
			var err error
			e, err = templateError(ctx, "k8sbrokenrego", m.podID)
			return err == nil, err
		})
		if e["code"] != "ingest_error" {
			t.Errorf("code = %v, want ingest_error", e["code"])
		}
		if msg, _ := e["message"].(string); !strings.Contains(msg, "no_such_function") || !strings.Contains(msg, "line 4, column 10") {
			t.Errorf("message = %q, want the compiler's message with its line and column", msg)
		}
		if e["location"] != "spec.targets[0].rego:4:10" {
			t.Errorf("location = %v, want spec.targets[0].rego:4:10", e["location"])
		}
		u, err := getTemplate(t.Context(), "k8sbrokenrego")
		if err != nil {
			t.Fatal(err)
		}
		if c := condition(u, "Ready"); c == nil || c["status"] != "False" || c["reason"] != "IngestError" {
			t.Errorf("Ready condition = %v, want False with reason IngestError", c)
		}
		if created, _, _ := unstructuredBool(u, "status", "created"); created {
			t.Errorf("status.created is true for a template that never compiled")
		}
	})

	t.Run("good template beside", func(t *testing.T) {
		eventually(t, "the good template to be Ready", func(ctx context.Context) (bool, error) {
			return templateLoaded(ctx, "k8sgoodbeside", m.podID)
		})
		apply(t, constraint("K8sGoodBeside", "beside", "deny", "team"))
		eventually(t, "its constraint to be enforced", func(ctx context.Context) (bool, error) {
			return constraintEnforced(ctx, "K8sGoodBeside", "beside", m.podID)
		})
	})

	templateErrors := []struct {
		name, kind, targets string
		code, message       string
	}{
		{"wrong-name", "K8sRightName", regoTarget(okRego), "create_error", `must be the lowercase of spec.crd.spec.names.kind "K8sRightName"`},
		{"k8stwotargets", "K8sTwoTargets", regoTarget(okRego) + regoTarget(okRego), "create_error", "exactly one target"},
		{"othergoodbeside", "K8sGoodBeside", regoTarget(okRego), "create_error", `kind "K8sGoodBeside" is already defined by ConstraintTemplate "k8sgoodbeside"`},
	}
	for _, tc := range templateErrors {
		t.Run("template "+tc.name, func(t *testing.T) {
			apply(t, template(tc.name, tc.kind, tc.targets))
			var e map[string]any
			eventually(t, "an error on "+tc.name, func(ctx context.Context) (bool, error) {
				var err error
				e, err = templateError(ctx, tc.name, m.podID)
				return err == nil, err
			})
			if msg, _ := e["message"].(string); e["code"] != tc.code || !strings.Contains(msg, tc.message) {
				t.Errorf("error = %v, want code %s and a message with %q", e, tc.code, tc.message)
			}
		})
	}

	constraintErrors := []struct {
		name, doc, code, message string
	}{
		{"unknown-action", constraint("K8sGoodBeside", "unknown-action", "block", "team"), "enforcement_action_error", `"block" is not one of`},
		{"scoped-without-actions", constraint("K8sGoodBeside", "scoped-without-actions", "scoped", "team"), "enforcement_action_error", "scopedEnforcementActions"},
	}
	for _, tc := range constraintErrors {
		t.Run("constraint "+tc.name, func(t *testing.T) {
			apply(t, tc.doc)
			var e map[string]any
			eventually(t, "an error on "+tc.name, func(ctx context.Context) (bool, error) {
				var err error
				e, err = constraintEntry(ctx, "K8sGoodBeside", tc.name, m.podID)
				return err == nil && e["errors"] != nil, err
			})
			errs, _ := e["errors"].([]any)
			first, _ := errs[0].(map[string]any)
			if msg, _ := first["message"].(string); e["enforced"] != false || first["code"] != tc.code || !strings.Contains(msg, tc.message) {
				t.Errorf("byPod entry = %v, want enforced false and code %s with %q", e, tc.code, tc.message)
			}
		})
	}

	t.Run("constraint with parameters the schema rejects", func(t *testing.T) {
		// The API server checks parameters against the CRD schema, so a
		// constraint with bad parameters is refused before it is stored.
		bad := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(constraint("K8sGoodBeside", "labels-not-strings", "deny", "1", "2")), &bad.Object); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(bad.Object, "team", "spec", "parameters", "labels"); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(t.Context(), bad); !apierrors.IsInvalid(err) {
			t.Errorf("creating a constraint with labels: team: err = %v, want Invalid from the API server", err)
		}

		// Stored constraints are not checked again when their template's
		// schema changes: the engine does, and the status says so.
		apply(t, requiredLabels("v1", "K8sSchemaChange"))
		eventually(t, "the template to be Ready", func(ctx context.Context) (bool, error) {
			return templateLoaded(ctx, "k8sschemachange", m.podID)
		})
		apply(t, constraint("K8sSchemaChange", "labels-list", "deny", "team"))
		eventually(t, "the constraint to be enforced", func(ctx context.Context) (bool, error) {
			return constraintEnforced(ctx, "K8sSchemaChange", "labels-list", m.podID)
		})
		u, err := getTemplate(t.Context(), "k8sschemachange")
		if err != nil {
			t.Fatal(err)
		}
		props := map[string]any{"labels": map[string]any{"type": "string"}}
		if err := unstructured.SetNestedMap(u.Object, props, "spec", "crd", "spec", "validation", "openAPIV3Schema", "properties"); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Update(t.Context(), u); err != nil {
			t.Fatalf("updating the template: %v", err)
		}
		var e map[string]any
		eventually(t, "an error on the constraint", func(ctx context.Context) (bool, error) {
			var err error
			e, err = constraintEntry(ctx, "K8sSchemaChange", "labels-list", m.podID)
			return err == nil && e["errors"] != nil, err
		})
		errs, _ := e["errors"].([]any)
		first, _ := errs[0].(map[string]any)
		if msg, _ := first["message"].(string); e["enforced"] != false || first["code"] != "constraint_error" || !strings.Contains(msg, "labels") {
			t.Errorf("byPod entry = %v, want enforced false and a constraint_error about labels", e)
		}
		c, err := testenv.GetConstraint(t.Context(), env.Client, "K8sSchemaChange", "labels-list")
		if err != nil {
			t.Fatal(err)
		}
		if cond := condition(c, "Ready"); cond == nil || cond["status"] != "False" {
			t.Errorf("Ready condition = %v, want False", cond)
		}
	})

	t.Run("constraint of a deleted template", func(t *testing.T) {
		apply(t, requiredLabels("v1", "K8sOrphaned"))
		apply(t, constraint("K8sOrphaned", "left-behind", "deny", "team"))
		eventually(t, "the constraint to be enforced", func(ctx context.Context) (bool, error) {
			return constraintEnforced(ctx, "K8sOrphaned", "left-behind", m.podID)
		})
		// `kubectl delete --cascade=orphan`: the template keeps an orphan
		// finalizer until the garbage collector (which envtest lacks) has
		// orphaned its CRD.
		tmpl, err := getTemplate(t.Context(), "k8sorphaned")
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Delete(t.Context(), tmpl, client.PropagationPolicy(metav1.DeletePropagationOrphan)); err != nil {
			t.Fatal(err)
		}
		var e map[string]any
		eventually(t, "the constraint to report that no template enforces it", func(ctx context.Context) (bool, error) {
			var err error
			e, err = constraintEntry(ctx, "K8sOrphaned", "left-behind", m.podID)
			return err == nil && e["enforced"] == false, err
		})
		errs, _ := e["errors"].([]any)
		if len(errs) == 0 || errs[0].(map[string]any)["code"] != "template_not_loaded" {
			t.Errorf("byPod entry = %v, want a template_not_loaded error", e)
		}
		for _, k := range m.Engine().TemplateKinds() {
			if k == "K8sOrphaned" {
				t.Errorf("the engine still holds the deleted template")
			}
		}
		// The manager left the CRD alone. Clean up as the garbage
		// collector and the user would: the CRD, then the template.
		crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "k8sorphaned.constraints.gatekeeper.sh"}}
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(crd), crd); err != nil {
			t.Fatalf("the orphaned CRD is gone: %v", err)
		}
		if err := env.Client.Delete(t.Context(), crd); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(tmpl), tmpl); err != nil {
			t.Fatal(err)
		}
		tmpl.SetFinalizers(nil)
		if err := env.Client.Update(t.Context(), tmpl); err != nil {
			t.Fatalf("removing the orphan finalizer: %v", err)
		}
		eventually(t, "the watch on the orphaned kind to stop", func(context.Context) (bool, error) {
			return !m.Watches().Watching("K8sOrphaned"), nil
		})
	})
}
