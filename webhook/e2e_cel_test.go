package webhook_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// celConstraint is a PcNamespaceLabels constraint (templates/namespacelabels,
// CEL only) on ConfigMaps in the cel-* namespaces.
const celConstraint = `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: PcNamespaceLabels
metadata:
  name: cel-team-namespaces
spec:
  enforcementAction: deny
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["ConfigMap"]
    namespaces: ["cel-*"]
  parameters:
    labels: ["team", "cost-center"]
    sameOnObject: true
`

// TestCELTemplate runs a CEL-only template through kube-apiserver and the
// webhook: its messages refuse, warn, or only log, with the constraint's
// action; its namespaceObject is the request's Namespace; a DELETE is kept
// out by its matchCondition; and a template whose CEL does not compile is
// refused at apply time with the field.
func TestCELTemplate(t *testing.T) {
	needEnv(t)
	ctx := t.Context()
	wc, warned := warningClient(t)
	tmpl, err := os.ReadFile("../templates/namespacelabels/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, wc, namespace("cel-scratch", map[string]string{"team": "nobody"}))
	mustCreate(t, wc, namespace("cel-payments", map[string]string{"team": "payments", "cost-center": "cc-42"}))
	createPolicy(t, string(tmpl))
	constraint := createPolicy(t, celConstraint)
	setAction := func(action string) {
		t.Helper()
		patch := []byte(fmt.Sprintf(`{"spec":{"enforcementAction":%q}}`, action))
		if err := env.Client.Patch(ctx, constraint, client.RawPatch("application/merge-patch+json", patch)); err != nil {
			t.Fatalf("setting enforcementAction %s: %v", action, err)
		}
	}
	const scratchMsg = "[cel-team-namespaces] namespace cel-scratch lacks the labels cost-center"

	t.Run("deny refuses with [name] message", func(t *testing.T) {
		eventually(t, "the CEL constraint to refuse", func(ctx context.Context) error {
			return wantDenied(wc.Create(ctx, configMap("cel-scratch"), client.DryRunAll), scratchMsg)
		})
		err := wc.Create(ctx, configMap("cel-scratch"))
		if err := wantDenied(err, scratchMsg); err != nil {
			t.Fatal(err)
		}
		if !apierrors.IsForbidden(err) {
			t.Errorf("error is not 403 Forbidden: %v", err)
		}
		// The object's labels must have the Namespace's values.
		cm := configMap("cel-payments")
		cm.Labels = map[string]string{"team": "search", "cost-center": "cc-42"}
		err = wc.Create(ctx, cm, client.DryRunAll)
		if err := wantDenied(err, "[cel-team-namespaces] the labels team of ConfigMap cm must have the values of namespace cel-payments: team=payments"); err != nil {
			t.Error(err)
		}
		cm.Labels["team"] = "payments"
		mustCreate(t, wc, cm)
		if w := warned.take(); len(w) > 0 {
			t.Errorf("warnings: %q", w)
		}
		// An UPDATE is judged too.
		patch := []byte(`{"metadata":{"labels":{"team":"search"}}}`)
		err = wc.Patch(ctx, cm, client.RawPatch("application/merge-patch+json", patch))
		if err := wantDenied(err, "[cel-team-namespaces] the labels team of ConfigMap cm must have"); err != nil {
			t.Error(err)
		}
	})

	t.Run("warn admits with the warning", func(t *testing.T) {
		setAction("warn")
		eventually(t, "the warn constraint", func(ctx context.Context) error {
			warned.take()
			if err := wc.Create(ctx, configMap("cel-scratch"), client.DryRunAll); err != nil {
				return err
			}
			return wantWarning(warned.take(), scratchMsg)
		})
	})

	t.Run("dryrun admits silently and logs", func(t *testing.T) {
		setAction("dryrun")
		eventually(t, "the dryrun constraint", func(ctx context.Context) error {
			warned.take()
			if err := wc.Create(ctx, configMap("cel-scratch"), client.DryRunAll); err != nil {
				return err
			}
			if w := warned.take(); len(w) > 0 {
				return fmt.Errorf("warnings %q", w)
			}
			return nil
		})
		// Kept for the next subtest, which deletes it.
		if err := wc.Create(ctx, configMap("cel-scratch")); err != nil {
			t.Fatalf("creating a ConfigMap under dryrun: %v", err)
		}
		if !hook.logs.Contains("denied admission: ", `"constraint_action": "dryrun"`, `"constraint_name": "cel-team-namespaces"`, `"resource_namespace": "cel-scratch"`) {
			t.Error("the dryrun violation was not logged")
		}
	})

	t.Run("a DELETE is not refused", func(t *testing.T) {
		// The ConfigMap created under dryrun breaks the rule; its DELETE
		// reaches the webhook, and the matchCondition keeps it out.
		setAction("deny")
		other := configMap("cel-scratch")
		other.Name = "cm2"
		eventually(t, "the deny constraint again", func(ctx context.Context) error {
			return wantDenied(wc.Create(ctx, other, client.DryRunAll), scratchMsg)
		})
		if err := wc.Delete(ctx, configMap("cel-scratch")); err != nil {
			t.Errorf("deleting a ConfigMap that breaks the rule: %v", err)
		}
	})

	for _, bad := range []struct {
		name, kind, expression, want string
	}{
		{"a template whose CEL does not compile is refused with the field", "PcBrokenCel",
			`'namespaceObject == null || size(variables.mising) == 0'`, "undefined field 'mising'"},
		{"a template whose CEL is over the cost budget is refused with the field", "PcCostlyCel",
			`'namespaceObject == null || lists.range(3000).all(i, lists.range(3000).all(j, i != j || size(variables.missing) == 0))'`,
			"estimated cost exceeds budget by factor of"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			const good = `'namespaceObject == null || size(variables.missing) == 0'`
			if !strings.Contains(string(tmpl), good) {
				t.Fatalf("the template has no %s", good)
			}
			broken := testenv.Parse(t, strings.Replace(string(tmpl), good, bad.expression, 1))
			broken.SetName(strings.ToLower(bad.kind))
			if err := unstructuredSet(broken.Object, bad.kind, "spec", "crd", "spec", "names", "kind"); err != nil {
				t.Fatal(err)
			}
			err := env.Client.Create(ctx, broken)
			if err == nil {
				_ = env.Client.Delete(ctx, broken)
				t.Fatal("the template was created")
			}
			t.Logf("kubectl would show: %v", err)
			for _, want := range []string{`admission webhook "check-policy.gatekeeper.sh" denied the request`,
				"spec.targets[0].code[0].source.validations[0].expression", bad.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if !apierrors.IsInvalid(err) {
				t.Errorf("error is not 422 Invalid: %v", err)
			}
		})
	}
}

// TestCELTemplateIgnoredFields: a template whose CEL has fields Gatekeeper
// ignores (a ValidatingAdmissionPolicy's reason, matchConditions in the
// plural) is admitted, as Gatekeeper admits it, with a warning naming each.
func TestCELTemplateIgnoredFields(t *testing.T) {
	needEnv(t)
	wc, warned := warningClient(t)
	tmpl, err := os.ReadFile("../templates/namespacelabels/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const line = "              - expression: 'namespaceObject == null || size(variables.missing) == 0'\n"
	const source = "          source:\n"
	text := string(tmpl)
	if !strings.Contains(text, line) || !strings.Contains(text, source) {
		t.Fatalf("the template has no %q or %q", line, source)
	}
	text = strings.Replace(text, line, line+"                reason: Forbidden\n", 1)
	text = strings.Replace(text, source, source+"            matchConditions: []\n", 1)
	u := testenv.Parse(t, text)
	u.SetName("pcignoredfields")
	if err := unstructuredSet(u.Object, "PcIgnoredFields", "spec", "crd", "spec", "names", "kind"); err != nil {
		t.Fatal(err)
	}
	warned.take()
	if err := wc.Create(t.Context(), u, client.DryRunAll); err != nil {
		t.Fatalf("the template was refused: %v", err)
	}
	w := warned.take()
	for _, want := range []string{
		"spec.targets[0].code[0].source.matchConditions: unknown field, ignored as Gatekeeper ignores it (Gatekeeper's key is matchCondition, singular)",
		"spec.targets[0].code[0].source.validations[0].reason: unknown field, ignored as Gatekeeper ignores it",
	} {
		if !slices.ContainsFunc(w, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("warnings %q, want one starting %q", w, want)
		}
	}
	if len(w) != 2 {
		t.Errorf("warnings %q, want 2", w)
	}
}

func unstructuredSet(obj map[string]any, value string, path ...string) error {
	m := obj
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			return fmt.Errorf("no %s in %v", p, path)
		}
		m = next
	}
	m[path[len(path)-1]] = value
	return nil
}
