package celdriver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	celconfig "k8s.io/apiserver/pkg/apis/cel"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/engine/celdriver"
	"github.com/portcullis-dev/portcullis/internal/gklibrary"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestMatchesValidatorLibrary pins the driver's evaluator to the
// apiserver's ValidatingAdmissionPolicy validator: every gatekeeper-library
// template with CEL, each of its sample constraints, against each of its
// sample objects created, deleted and in a labeled Namespace, gets the
// same decisions (action, evaluation and message) from both.
func TestMatchesValidatorLibrary(t *testing.T) {
	lib, err := gklibrary.ReadAll(testenv.LibraryDir(t))
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"team": "a"}}}
	templates, decisions := 0, 0
	for _, p := range lib {
		ct, err := engine.ParseTemplate(p.Template)
		if err != nil {
			t.Fatal(err)
		}
		if !engine.HasCode(ct, engine.EngineCEL) {
			continue
		}
		templates++
		var constraints []*unstructured.Unstructured
		for _, c := range p.Constraints {
			constraints = append(constraints, c.Object)
		}
		for _, o := range p.Objects {
			for _, r := range libraryReviews(t, o.Object, ns) {
				ours, theirs, err := celdriver.Decisions(context.Background(), ct, constraints, r, celconfig.PerCallLimit)
				if err != nil {
					t.Fatalf("%s: %v", o.File, err)
				}
				decisions += len(ours)
				if got, want := strings.Join(ours, "\n"), strings.Join(theirs, "\n"); got != want {
					t.Errorf("%s, %s %s:\ndriver:\n%s\napiserver:\n%s", ct.GetName(), o.File, r.req.Operation, got, want)
				}
			}
		}
	}
	if templates != 16 || decisions < 500 {
		t.Errorf("%d templates, %d decisions compared: is the library complete?", templates, decisions)
	}
	t.Logf("%d templates, %d decisions", templates, decisions)
}

// libraryReviews are the reviews of a library sample object: the request
// of an AdmissionReview as it is; any other object created, in ns, and
// deleted.
func libraryReviews(t *testing.T, u *unstructured.Unstructured, ns *corev1.Namespace) []*request {
	t.Helper()
	if u.GetKind() == "AdmissionReview" {
		var ar admissionv1.AdmissionReview
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ar); err != nil || ar.Request == nil {
			t.Fatalf("AdmissionReview without a request: %v", err)
		}
		return []*request{{req: ar.Request}}
	}
	created := admissionFor(t, admissionv1.Create, u.Object, nil)
	inNamespace := admissionFor(t, admissionv1.Create, u.Object, nil)
	inNamespace.ns = ns
	deleted := admissionFor(t, admissionv1.Delete, nil, u.Object)
	return []*request{created, inNamespace, deleted}
}

// TestMatchesValidator compares the two on the driver's own cases:
// messages and their fallbacks, errors under both failure policies, match
// conditions, params, and budgets that run out in a validation or in a
// message expression.
func TestMatchesValidator(t *testing.T) {
	big := pod("p", nil)
	items := make([]any, 100)
	for i := range items {
		items[i] = fmt.Sprintf("item-%d", i)
	}
	big["spec"].(obj)["items"] = items
	fallbacks := `
validations:
- expression: 'false'
  messageExpression: 'string(object.metadata.missing)'
  message: 'static'
- expression: '1 == 2'
  messageExpression: '"  "'
- expression: 'false'
  messageExpression: '"two\nlines"'
- expression: 'false'
  messageExpression: '"` + strings.Repeat("x", 6000) + `"'
- expression: 'true'
  messageExpression: '"never used"'
`
	errs := `
validations:
- expression: 'object.spec.missing == "x"'
- expression: 'false'
  message: after
`
	matching := `
matchCondition:
- name: named-p
  expression: 'string(object.metadata.name).startsWith("p")'
- name: errs
  expression: 'object.metadata.name == "perr" ? object.spec.missing == true : true'
validations:
- expression: 'false'
  message: judged
`
	budget := `
variables:
- name: pairs
  expression: 'object.spec.items.map(a, object.spec.items.map(b, a + b)).size()'
validations:
- expression: 'variables.pairs > 0'
- expression: 'false'
  messageExpression: '"pairs: " + string(object.spec.items.map(a, object.spec.items.map(b, a + b)).size())'
`
	// nested is shared by the constraints (it reads no params), and so is
	// the costly variable it reads: each constraint must still be charged
	// for both.
	nested := `
variables:
- name: pairs
  expression: 'object.spec.items.map(a, object.spec.items.map(b, a + b)).size()'
- name: hasPairs
  expression: 'variables.pairs > 0'
validations:
- expression: 'variables.hasPairs'
- expression: 'false'
  messageExpression: '"pairs: " + string(variables.pairs)'
`
	// The apiserver evaluates every message expression, those of passing
	// validations too, in an activation of its own where the variables
	// they read, and those these read, cost again.
	passingMessage := `
validations:
- expression: 'true'
  messageExpression: '"pairs: " + string(object.spec.items.map(a, object.spec.items.map(b, a + b)).size())'
`
	chargedAgain := `
variables:
- name: pairs
  expression: 'has(params.spec) ? object.spec.items.map(a, object.spec.items.map(b, a + b)).size() : 0'
- name: more
  expression: 'variables.pairs + 1'
validations:
- expression: 'variables.pairs < 0'
  messageExpression: '"more: " + string(variables.more)'
- expression: 'variables.more > 0'
`
	for _, tc := range []struct {
		name, src string
		object    obj
		budget    int64
		want      string // in the decisions
	}{
		{"messages", requiredLabels, pod("bad", obj{"forbidden": "x"}), celconfig.PerCallLimit, "a deny: denies: missing labels: owner, team"},
		{"passes", requiredLabels, pod("p", obj{"owner": "a", "team": "b"}), celconfig.PerCallLimit, "b admit"},
		{"fallbacks", fallbacks, pod("p", nil), celconfig.PerCallLimit, "failed expression: false"},
		{"error Fail", errs, pod("p", nil), celconfig.PerCallLimit, "error: denies: expression"},
		{"error Ignore", "failurePolicy: Ignore\n" + errs, pod("p", nil), celconfig.PerCallLimit, "error: admits: expression"},
		{"match", matching, pod("p1", nil), celconfig.PerCallLimit, "judged"},
		{"no match", matching, pod("q1", nil), celconfig.PerCallLimit, ""},
		{"match error", matching, pod("perr", nil), celconfig.PerCallLimit, "error: denies: expression"},
		{"match error Ignore", "failurePolicy: Ignore\n" + matching, pod("perr", nil), celconfig.PerCallLimit, ""},
		{"within budget", budget, big, celconfig.PerCallLimit, "pairs: 100"},
		{"out of budget in a message", budget, big, 250_000, "failed messageExpression: validation failed due to running out of cost budget"},
		{"out of budget in a variable", budget, big, 1000, "running out of cost budget"},
		{"shared variables", nested, big, celconfig.PerCallLimit, "b deny: denies: pairs: 100"},
		{"out of budget in a shared variable read by another", nested, big, 1000, "b error: denies: validation failed due to running out of cost budget"},
		{"out of budget in the message of a validation that passes", passingMessage, big, 100_000, "a error: denies: failed messageExpression: validation failed due to running out of cost budget"},
		{"within budget, message of a validation that passes", passingMessage, big, celconfig.PerCallLimit, "a admit"},
		{"out of budget in the variables a message reads again", chargedAgain, big, 200_000, "a error: denies: failed messageExpression: validation failed due to running out of cost budget"},
		{"variables a message reads again within budget", chargedAgain, big, celconfig.PerCallLimit, "a deny: denies: more: 101"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := admissionFor(t, admissionv1.Create, tc.object, nil)
			cs := []*unstructured.Unstructured{constraint("a", obj{"labels": []any{"owner", "team"}}), constraint("b", obj{"labels": []any{}})}
			ours, theirs, err := celdriver.Decisions(context.Background(), template(t, tc.src, false), cs, r, tc.budget)
			if err != nil {
				t.Fatal(err)
			}
			got, want := strings.Join(ours, "\n"), strings.Join(theirs, "\n")
			if got != want {
				t.Errorf("driver:\n%s\napiserver:\n%s", got, want)
			}
			if !strings.Contains(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("decisions:\n%s\nwant %q in them", got, tc.want)
			}
		})
	}
}
