package webhook_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/webhook"
)

func engineOptions() engine.Options { return engine.Options{} }

// policyRequest is an admission request for a template or constraint
// written as YAML.
func policyRequest(t *testing.T, op admissionv1.Operation, doc string) *admissionv1.AdmissionRequest {
	t.Helper()
	u := testenv.Parse(t, doc)
	raw, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	gvk := u.GroupVersionKind()
	r := request(op, gvk.Kind, "", u.GetName(), raw, nil)
	r.Kind.Group, r.Kind.Version = gvk.Group, gvk.Version
	return r
}

func TestPolicy(t *testing.T) {
	eng := newEngine(t, tagTemplate)
	h := webhook.NewPolicyHandler(eng, engine.Options{}, 0, (&logSink{}).logger())
	brokenRego := strings.Replace(tagTemplate, `msg := sprintf("container %v uses %v", [c.name, input.parameters.tag])`,
		`msg := sprintf("container %v uses %v", [c.name, input.parameters.tag]`, 1)
	undefinedRef := strings.Replace(tagTemplate, "endswith(c.image", "endswith(d.image", 1)
	httpSend := strings.Replace(tagTemplate, `endswith(c.image, concat(":", ["", input.parameters.tag]))`,
		`http.send({"method": "get", "url": "http://example.com"})`, 1)
	tagConstraint := constraint("K8sNoLatest", "no-latest", "  parameters:\n    tag: latest\n")
	tests := []policyCase{
		{name: "template that compiles", doc: tagTemplate, wantOK: true},
		{name: "template update that compiles", op: admissionv1.Update, doc: tagTemplate, wantOK: true},
		{name: "v1beta1 template", doc: strings.Replace(tagTemplate, "templates.gatekeeper.sh/v1", "templates.gatekeeper.sh/v1beta1", 1), wantOK: true},
		{
			name: "Rego parse error, with line and column", doc: brokenRego,
			wantIn:    []string{`template "k8snolatest"`, "spec.targets[0].rego", "line 6, column 1", "rego_parse_error"},
			wantCause: "spec.targets[0].rego",
		},
		{
			name: "Rego compile error, with line and column", doc: undefinedRef,
			wantIn:    []string{"spec.targets[0].rego", "line 4, column", "rego_unsafe_var_error"},
			wantCause: "spec.targets[0].rego",
		},
		{name: "disabled builtin", doc: httpSend, wantIn: []string{"http.send"}},
		{name: "name is not the kind", doc: strings.Replace(tagTemplate, "name: k8snolatest", "name: other", 1), wantIn: []string{"must be the lowercase"}},
		{name: "constraint that fits the schema", doc: tagConstraint, wantOK: true},
		{
			name:   "parameters that do not fit the schema",
			doc:    constraint("K8sNoLatest", "bad-params", "  parameters:\n    tag: [latest]\n"),
			wantIn: []string{"spec.parameters.tag", "string"},
		},
		{
			name:   "unknown enforcement action",
			doc:    constraint("K8sNoLatest", "bad-action", "  enforcementAction: block\n"),
			wantIn: []string{"spec.enforcementAction", `"block"`},
		},
		{
			name:   "scoped action at an unknown point",
			doc:    constraint("K8sNoLatest", "bad-point", "  enforcementAction: scoped\n  scopedEnforcementActions:\n  - action: deny\n    enforcementPoints: [{name: nowhere}]\n"),
			wantIn: []string{"spec.scopedEnforcementActions[0].enforcementPoints[0].name"},
		},
		{
			name:   "bad match",
			doc:    constraint("K8sNoLatest", "bad-match", "  match:\n    labelSelector:\n      matchExpressions: [{key: a, operator: Sometimes}]\n"),
			wantIn: []string{"Sometimes"},
		},
		{
			name: "constraint of a template not loaded", doc: constraint("K8sElsewhere", "c", "  parameters:\n    x: 1\n"),
			wantOK: true, wantWarn: "the ConstraintTemplate of kind K8sElsewhere is not loaded",
		},
		{name: "DELETE is not checked", op: admissionv1.Delete, doc: brokenRego, wantOK: true},
	}
	// /v1/admit checks them as /v1/admitpolicy does, as Gatekeeper's
	// single webhook does (review finding 9); it carries no warning of
	// the check.
	admit := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{Policy: h})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkPolicy(t, h, tc) })
		tc.wantWarn = ""
		t.Run(tc.name+" via /v1/admit", func(t *testing.T) { checkPolicy(t, admit, tc) })
	}
	// Not when the configuration has the check-policy webhook, which
	// checks them: the broken template is judged as any object.
	skip := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{Policy: h, CheckPolicies: func(context.Context) bool { return false }})
	checkPolicy(t, skip, policyCase{doc: brokenRego, wantOK: true})
}

// policyCase is one policy object and how /v1/admitpolicy answers it.
type policyCase struct {
	name      string
	op        admissionv1.Operation
	doc       string
	wantOK    bool
	wantIn    []string // in the message
	wantCause string   // field of the first cause, if any
	wantWarn  string
}

// checkPolicy sends tc's object to h and checks the answer.
func checkPolicy(t *testing.T, h http.Handler, tc policyCase) {
	t.Helper()
	op := tc.op
	if op == "" {
		op = admissionv1.Create
	}
	req := policyRequest(t, op, tc.doc)
	if op == admissionv1.Delete {
		req.OldObject, req.Object = req.Object, req.OldObject
	}
	code, resp, body := serve(t, h, reviewBody(t, req))
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, body)
	}
	if resp.Allowed != tc.wantOK {
		t.Fatalf("allowed %v, want %v: %+v", resp.Allowed, tc.wantOK, resp.Result)
	}
	if tc.wantWarn != "" && (len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], tc.wantWarn)) {
		t.Errorf("warnings %q, want %q", resp.Warnings, tc.wantWarn)
	}
	if tc.wantOK {
		return
	}
	t.Logf("refused: %s", resp.Result.Message)
	if resp.Result.Code != http.StatusUnprocessableEntity || resp.Result.Reason != metav1.StatusReasonInvalid {
		t.Errorf("result %d %s, want 422 Invalid", resp.Result.Code, resp.Result.Reason)
	}
	for _, want := range tc.wantIn {
		if !strings.Contains(resp.Result.Message, want) {
			t.Errorf("message %q does not contain %q", resp.Result.Message, want)
		}
	}
	if tc.wantCause != "" {
		d := resp.Result.Details
		if d == nil || len(d.Causes) == 0 || d.Causes[0].Field != tc.wantCause || !strings.Contains(d.Causes[0].Message, "line ") {
			out, _ := yaml.Marshal(d)
			t.Errorf("details %s, want a cause at %s with its line", out, tc.wantCause)
		}
	}
}
