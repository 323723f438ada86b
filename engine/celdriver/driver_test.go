package celdriver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
)

type obj = map[string]any

const testTarget = "admission.k8s.gatekeeper.sh"

// template builds a template of kind K with a K8sNativeValidation entry
// (after a Rego one when rego is true) whose source is the YAML given.
func template(t *testing.T, sourceYAML string, rego bool) *templates.ConstraintTemplate {
	t.Helper()
	var src any
	if err := yaml.Unmarshal([]byte(sourceYAML), &src); err != nil {
		t.Fatalf("source YAML: %v", err)
	}
	var code []templates.Code
	if rego {
		code = append(code, templates.Code{Engine: "Rego", Source: &templates.Anything{Value: obj{"rego": "package x\nviolation[{\"msg\": \"rego\"}] { true }"}}})
	}
	code = append(code, templates.Code{Engine: celdriver.Name, Source: &templates.Anything{Value: src}})
	return &templates.ConstraintTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "k"},
		Spec: templates.ConstraintTemplateSpec{
			CRD:     templates.CRD{Spec: templates.CRDSpec{Names: templates.Names{Kind: "K"}}},
			Targets: []templates.Target{{Target: testTarget, Code: code}},
		},
	}
}

func constraint(name string, params obj) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: obj{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1",
		"kind":       "K",
		"metadata":   obj{"name": name},
		"spec":       obj{},
	}}
	if params != nil {
		u.Object["spec"].(obj)["parameters"] = params
	}
	return u
}

// request is a review as the driver sees it: an admission request, and
// optionally a Namespace.
type request struct {
	req *admissionv1.AdmissionRequest
	ns  *corev1.Namespace
}

func (r *request) GetAdmissionRequest() *admissionv1.AdmissionRequest { return r.req }
func (r *request) NamespaceObject() *corev1.Namespace                 { return r.ns }

func pod(name string, labels obj) obj {
	meta := obj{"name": name, "namespace": "default"}
	if labels != nil {
		meta["labels"] = labels
	}
	return obj{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   meta,
		"spec":       obj{"containers": []any{obj{"name": "c", "image": "nginx"}}},
	}
}

func raw(t *testing.T, o obj) runtime.RawExtension {
	t.Helper()
	if o == nil {
		return runtime.RawExtension{}
	}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: b}
}

func admissionFor(t *testing.T, op admissionv1.Operation, object, oldObject obj) *request {
	t.Helper()
	return &request{req: &admissionv1.AdmissionRequest{
		UID:       "1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Name:      "p",
		Namespace: "default",
		Operation: op,
		UserInfo:  authUser("alice"),
		Object:    raw(t, object),
		OldObject: raw(t, oldObject),
	}}
}

// query adds the template and returns the messages of the results for the
// constraints.
func query(t *testing.T, ct *templates.ConstraintTemplate, review any, cs ...*unstructured.Unstructured) []string {
	t.Helper()
	d := celdriver.New()
	if err := d.AddTemplate(context.Background(), ct); err != nil {
		t.Fatalf("AddTemplate: %v", err)
	}
	resp, err := d.Query(context.Background(), testTarget, cs, review)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	var msgs []string
	for _, r := range resp.Results {
		if r.Target != testTarget {
			t.Errorf("result target %q, want %q", r.Target, testTarget)
		}
		msgs = append(msgs, r.Constraint.GetName()+": "+r.Msg)
	}
	return msgs
}

func equal(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("results:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

const requiredLabels = `
variables:
- name: labels
  expression: 'has(variables.anyObject.metadata.labels) ? variables.anyObject.metadata.labels : {}'
validations:
- expression: 'variables.params.labels.all(l, l in variables.labels)'
  messageExpression: '"missing labels: " + variables.params.labels.filter(l, !(l in variables.labels)).join(", ")'
- expression: '!("forbidden" in variables.labels)'
  message: "the forbidden label is set"
- expression: 'variables.anyObject.metadata.name != "bad"'
`

func TestMessages(t *testing.T) {
	ct := template(t, requiredLabels, false)
	c := constraint("need-owner", obj{"labels": []any{"owner", "team"}})
	tests := []struct {
		name   string
		object obj
		want   []string
	}{
		{"allowed", pod("p", obj{"owner": "a", "team": "b"}), nil},
		{"messageExpression", pod("p", obj{"owner": "a"}), []string{"need-owner: missing labels: team"}},
		{"one result per failed validation", pod("bad", obj{"forbidden": "x"}), []string{
			"need-owner: missing labels: owner, team",
			"need-owner: the forbidden label is set",
			`need-owner: failed expression: variables.anyObject.metadata.name != "bad"`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			equal(t, query(t, ct, admissionFor(t, admissionv1.Create, tc.object, nil), c), tc.want...)
		})
	}
}

func TestMessageExpressionFallsBack(t *testing.T) {
	// A messageExpression that errs, or yields an empty string, falls
	// back to message, then to the expression.
	ct := template(t, `
validations:
- expression: 'false'
  messageExpression: 'string(object.metadata.missing)'
  message: 'static'
- expression: '1 == 2'
  messageExpression: '"  "'
`, false)
	equal(t, query(t, ct, admissionFor(t, admissionv1.Create, pod("p", nil), nil), constraint("c", nil)),
		"c: static", "c: failed expression: 1 == 2")
}

func TestFailurePolicy(t *testing.T) {
	src := `
validations:
- expression: 'object.spec.missing == "x"'
- expression: 'false'
  message: after
`
	review := admissionFor(t, admissionv1.Create, pod("p", nil), nil)
	equal(t, query(t, template(t, src, false), review, constraint("c", nil)),
		"c: expression 'object.spec.missing == \"x\"' resulted in error: no such key: missing", "c: after")
	equal(t, query(t, template(t, "failurePolicy: Fail\n"+src, false), review, constraint("c", nil)),
		"c: expression 'object.spec.missing == \"x\"' resulted in error: no such key: missing", "c: after")
	equal(t, query(t, template(t, "failurePolicy: Ignore\n"+src, false), review, constraint("c", nil)), "c: after")
}

func TestDefaultFailurePolicy(t *testing.T) {
	src := "validations:\n- expression: 'object.spec.missing == 1'\n"
	review := admissionFor(t, admissionv1.Create, pod("p", nil), nil)
	run := func(d *celdriver.Driver, src string) int {
		t.Helper()
		if err := d.AddTemplate(context.Background(), template(t, src, false)); err != nil {
			t.Fatal(err)
		}
		resp, err := d.Query(context.Background(), testTarget, []*unstructured.Unstructured{constraint("c", nil)}, review)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Results)
	}
	if n := run(celdriver.New(celdriver.DefaultFailurePolicy(celdriver.FailurePolicyIgnore)), src); n != 0 {
		t.Errorf("default Ignore: %d results, want 0", n)
	}
	if n := run(celdriver.New(celdriver.DefaultFailurePolicy(celdriver.FailurePolicyIgnore)), "failurePolicy: Fail\n"+src); n != 1 {
		t.Errorf("default Ignore, source Fail: %d results, want 1", n)
	}
	if n := run(celdriver.New(), src); n != 1 {
		t.Errorf("default: %d results, want 1", n)
	}
	if err := celdriver.CheckFailurePolicy("fail"); err == nil {
		t.Error(`CheckFailurePolicy("fail") = nil`)
	}
}

func TestVariablesSeeParamsValidationsDoNot(t *testing.T) {
	ct := template(t, `
variables:
- name: constraintName
  expression: 'params.metadata.name'
validations:
- expression: 'variables.constraintName != "deny-all"'
  messageExpression: '"denied by " + variables.constraintName'
- expression: 'variables.params == null || !has(variables.params.deny) || !variables.params.deny'
  message: 'deny is set'
`, false)
	review := admissionFor(t, admissionv1.Create, pod("p", nil), nil)
	equal(t, query(t, ct, review, constraint("deny-all", nil), constraint("other", obj{"deny": true}), constraint("fine", obj{"deny": false})),
		"deny-all: denied by deny-all", "other: deny is set")

	err := celdriver.Compile(template(t, "validations:\n- expression: 'params.spec.parameters.x == 1'\n", false))
	wantFieldError(t, err, "spec.targets[0].code[0].source.validations[0].expression", "undeclared reference to 'params'")
}

func TestDelete(t *testing.T) {
	// On a DELETE object is null and anyObject is oldObject.
	ct := template(t, `
validations:
- expression: 'object == null'
  message: object is set
- expression: 'oldObject != null && variables.anyObject.metadata.name == "old"'
  message: anyObject is not oldObject
- expression: 'request.operation == "DELETE" && request.userInfo.username == "alice"'
  message: request is wrong
`, false)
	r := admissionFor(t, admissionv1.Delete, pod("old", nil), pod("old", nil))
	equal(t, query(t, ct, r, constraint("c", nil)))

	// On a CREATE, anyObject is object.
	r = admissionFor(t, admissionv1.Create, pod("new", nil), nil)
	equal(t, query(t, ct, r, constraint("c", nil)), "c: object is set", "c: anyObject is not oldObject", "c: request is wrong")
}

func TestNamespaceObject(t *testing.T) {
	ct := template(t, `
validations:
- expression: 'namespaceObject == null || (has(namespaceObject.metadata.labels) && "team" in namespaceObject.metadata.labels)'
  messageExpression: '"namespace " + namespaceObject.metadata.name + " has no team label"'
`, false)
	c := constraint("c", nil)
	r := admissionFor(t, admissionv1.Create, pod("p", nil), nil)
	equal(t, query(t, ct, r, c))
	r.ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	equal(t, query(t, ct, r, c), "c: namespace default has no team label")
	r.ns.Labels = map[string]string{"team": "a"}
	equal(t, query(t, ct, r, c))

	// Passed as reviews.Namespace when the review does not carry it.
	d := celdriver.New()
	if err := d.AddTemplate(context.Background(), ct); err != nil {
		t.Fatal(err)
	}
	plain := &plainRequest{req: r.req}
	resp, err := d.Query(context.Background(), testTarget, []*unstructured.Unstructured{c}, plain,
		reviews.Namespace(obj{"apiVersion": "v1", "kind": "Namespace", "metadata": obj{"name": "other"}}))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || resp.Results[0].Msg != "namespace other has no team label" {
		t.Errorf("results %+v", resp.Results)
	}
}

type plainRequest struct{ req *admissionv1.AdmissionRequest }

func (r *plainRequest) GetAdmissionRequest() *admissionv1.AdmissionRequest { return r.req }

func TestMatchConditions(t *testing.T) {
	ct := template(t, `
matchCondition:
- name: only-pods-named-p
  expression: 'string(object.metadata.name).startsWith("p")'
validations:
- expression: 'false'
  message: judged
`, false)
	c := constraint("c", nil)
	equal(t, query(t, ct, admissionFor(t, admissionv1.Create, pod("p1", nil), nil), c), "c: judged")
	equal(t, query(t, ct, admissionFor(t, admissionv1.Create, pod("q1", nil), nil), c))
	// An error in a match condition follows the failure policy.
	bad := `
matchCondition:
- name: errs
  expression: 'object.spec.missing == true'
validations:
- expression: 'false'
`
	equal(t, query(t, template(t, bad, false), admissionFor(t, admissionv1.Create, pod("p", nil), nil), c),
		"c: expression 'object.spec.missing == true' resulted in error: no such key: missing")
	equal(t, query(t, template(t, "failurePolicy: Ignore\n"+bad, false), admissionFor(t, admissionv1.Create, pod("p", nil), nil), c))
}

func TestCostBudget(t *testing.T) {
	// A cross product over a big list exceeds the runtime budget: the
	// evaluation stops with an error, under the failure policy, instead
	// of running on.
	items := make([]any, 3000)
	for i := range items {
		items[i] = fmt.Sprintf("item-%d", i)
	}
	object := pod("p", nil)
	object["spec"].(obj)["items"] = items
	src := `
validations:
- expression: 'object.spec.items.all(a, object.spec.items.all(b, a == b || a != b))'
`
	r := admissionFor(t, admissionv1.Create, object, nil)
	start := time.Now()
	got := query(t, template(t, src, false), r, constraint("c", nil))
	// A guard against a hang, not a measure: cel-go's cost tracker takes
	// seconds to spend the budget here (its stack of costs is scanned on
	// every step), more on a loaded machine.
	if took := time.Since(start); took > time.Minute && !raceEnabled {
		t.Errorf("evaluation took %v", took)
	}
	if len(got) != 1 || !strings.Contains(got[0], "running out of cost budget") {
		t.Errorf("results %q, want one cost budget error", got)
	}
	equal(t, query(t, template(t, "failurePolicy: Ignore\n"+src, false), r, constraint("c", nil)))
}

func TestAuditReview(t *testing.T) {
	// A stored object (no operation, no user) is judged as object.
	ct := template(t, requiredLabels, false)
	r := &request{req: &admissionv1.AdmissionRequest{
		Kind:   metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Name:   "p",
		Object: raw(t, pod("p", nil)),
	}}
	equal(t, query(t, ct, r, constraint("c", obj{"labels": []any{"owner"}})), "c: missing labels: owner")
}

func TestQueryErrors(t *testing.T) {
	d := celdriver.New()
	ctx := context.Background()
	if err := d.AddTemplate(ctx, template(t, requiredLabels, false)); err != nil {
		t.Fatal(err)
	}
	c := constraint("c", obj{"labels": []any{}})
	if _, err := d.Query(ctx, testTarget, []*unstructured.Unstructured{c}, obj{}); !errors.Is(err, celdriver.ErrReview) {
		t.Errorf("review without a request: %v", err)
	}
	other := constraint("c", nil)
	other.SetKind("Other")
	if _, err := d.Query(ctx, testTarget, []*unstructured.Unstructured{other}, admissionFor(t, admissionv1.Create, pod("p", nil), nil)); err == nil {
		t.Error("a kind without a template: no error")
	}
	bad := &request{req: &admissionv1.AdmissionRequest{Object: runtime.RawExtension{Raw: []byte("{")}}}
	if _, err := d.Query(ctx, testTarget, []*unstructured.Unstructured{c}, bad); !errors.Is(err, celdriver.ErrReview) {
		t.Errorf("bad object: %v", err)
	}
	if err := d.RemoveTemplate(ctx, template(t, requiredLabels, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Query(ctx, testTarget, []*unstructured.Unstructured{c}, admissionFor(t, admissionv1.Create, pod("p", nil), nil)); err == nil {
		t.Error("removed template: no error")
	}
}

func TestGenerateVAPKept(t *testing.T) {
	s, err := celdriver.ParseSource(obj{"generateVAP": true, "validations": []any{obj{"expression": "true"}}}, "source")
	if err != nil {
		t.Fatal(err)
	}
	if s.GenerateVAP == nil || !*s.GenerateVAP {
		t.Errorf("generateVAP = %v", s.GenerateVAP)
	}
}

func TestReplaceTemplate(t *testing.T) {
	d := celdriver.New()
	ctx := context.Background()
	if err := d.AddTemplate(ctx, template(t, "validations:\n- expression: 'false'\n  message: one\n", false)); err != nil {
		t.Fatal(err)
	}
	// A template that does not compile leaves the one held.
	if err := d.AddTemplate(ctx, template(t, "validations:\n- expression: 'nope'\n", false)); err == nil {
		t.Fatal("bad template accepted")
	}
	r := admissionFor(t, admissionv1.Create, pod("p", nil), nil)
	resp, err := d.Query(ctx, testTarget, []*unstructured.Unstructured{constraint("c", nil)}, r, reviews.Stats(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || resp.Results[0].Msg != "one" {
		t.Errorf("results %+v", resp.Results)
	}
	if len(resp.StatsEntries) != 1 || resp.StatsEntries[0].StatsFor != "K/c" {
		t.Errorf("stats %+v", resp.StatsEntries)
	}
	if resp.Trace != nil {
		t.Errorf("a trace without reviews.Tracing: %q", *resp.Trace)
	}
	resp, err = d.Query(ctx, testTarget, []*unstructured.Unstructured{constraint("c", nil)}, r, reviews.Tracing(true))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Trace == nil || *resp.Trace != "K c: validations[0]: deny: one\n" {
		t.Errorf("trace %v", resp.Trace)
	}
}

func authUser(name string) authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: name, Groups: []string{"g"}, Extra: map[string]authenticationv1.ExtraValue{"k": {"v"}}}
}

// TestConcurrentQueries runs Queries while the template is replaced and
// removed: run it with -race.
func TestConcurrentQueries(t *testing.T) {
	d := celdriver.New()
	ctx := context.Background()
	ct := template(t, requiredLabels, false)
	if err := d.AddTemplate(ctx, ct); err != nil {
		t.Fatal(err)
	}
	c := constraint("c", obj{"labels": []any{"owner"}})
	r := admissionFor(t, admissionv1.Create, pod("p", nil), nil)
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				// A Query may run between RemoveTemplate and AddTemplate:
				// then the kind is missing, an error, never a panic.
				resp, err := d.Query(ctx, testTarget, []*unstructured.Unstructured{c}, r)
				if err == nil && (len(resp.Results) != 1 || resp.Results[0].Msg != "missing labels: owner") {
					errs <- fmt.Errorf("results %+v", resp.Results)
					return
				}
			}
		}()
	}
	for range 20 {
		if err := d.AddTemplate(ctx, ct); err != nil {
			t.Fatal(err)
		}
		if err := d.RemoveTemplate(ctx, ct); err != nil {
			t.Fatal(err)
		}
		if err := d.AddTemplate(ctx, ct); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
