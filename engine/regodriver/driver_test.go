package regodriver_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	fwrego "github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/opa/v1/storage"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/engine/regodriver"
)

const testTarget = "test.target"

type obj = map[string]any

type tmpl struct {
	kind    string
	rego    string
	libs    []string
	version string
}

func (t tmpl) build() *templates.ConstraintTemplate {
	src := obj{"rego": t.rego}
	if t.version != "" {
		src["version"] = t.version
	}
	if len(t.libs) > 0 {
		libs := make([]any, len(t.libs))
		for i, l := range t.libs {
			libs[i] = l
		}
		src["libs"] = libs
	}
	return &templates.ConstraintTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: strings.ToLower(t.kind)},
		Spec: templates.ConstraintTemplateSpec{
			CRD: templates.CRD{Spec: templates.CRDSpec{Names: templates.Names{Kind: t.kind}}},
			Targets: []templates.Target{{
				Target: testTarget,
				Code:   []templates.Code{{Engine: "Rego", Source: &templates.Anything{Value: src}}},
			}},
		},
	}
}

func constraint(kind, name string, params obj) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: obj{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1",
		"kind":       kind,
		"metadata":   obj{"name": name},
		"spec":       obj{},
	}}
	if params != nil {
		u.Object["spec"].(obj)["parameters"] = params
	}
	return u
}

// review is a minimal input.review.
func review(name string, labels obj) obj {
	return obj{
		"kind":      obj{"group": "", "version": "v1", "kind": "Pod"},
		"name":      name,
		"namespace": "default",
		"operation": "CREATE",
		"object": obj{
			"apiVersion": "v1",
			"kind":       "Pod",
			"metadata":   obj{"name": name, "namespace": "default", "labels": labels},
		},
	}
}

func newDriver(t testing.TB, opts ...regodriver.Option) *regodriver.Driver {
	t.Helper()
	d, err := regodriver.New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func mustAdd(t testing.TB, d drivers.Driver, ct *templates.ConstraintTemplate, cs ...*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	if err := d.AddTemplate(ctx, ct); err != nil {
		t.Fatalf("%s AddTemplate(%s): %v", d.Name(), ct.Name, err)
	}
	for _, c := range cs {
		if err := d.AddConstraint(ctx, c); err != nil {
			t.Fatalf("%s AddConstraint(%s): %v", d.Name(), c.GetName(), err)
		}
	}
}

func query(t testing.TB, d drivers.Driver, cs []*unstructured.Unstructured, r any, opts ...reviews.ReviewOpt) []string {
	t.Helper()
	resp, err := d.Query(context.Background(), testTarget, cs, r, opts...)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	return messages(resp)
}

func messages(resp *drivers.QueryResponse) []string {
	if resp == nil {
		return nil
	}
	var out []string
	for _, r := range resp.Results {
		out = append(out, r.Constraint.GetName()+": "+r.Msg)
	}
	return out
}

// equal reports whether a and b hold the same strings in the same order.
var equal = slices.Equal[[]string]

const requiredLabelsRego = `package k8srequiredlabels

violation[{"msg": msg, "details": {"missing": missing}}] {
	provided := {l | input.review.object.metadata.labels[l]}
	required := {l | l := input.parameters.labels[_]}
	missing := required - provided
	count(missing) > 0
	msg := sprintf("missing labels: %v", [missing])
}
`

func TestQuery(t *testing.T) {
	d := newDriver(t)
	c1 := constraint("K8sRequiredLabels", "need-a", obj{"labels": []any{"a"}})
	c2 := constraint("K8sRequiredLabels", "need-b", obj{"labels": []any{"b"}})
	mustAdd(t, d, tmpl{kind: "K8sRequiredLabels", rego: requiredLabelsRego}.build(), c1, c2)

	resp, err := d.Query(context.Background(), testTarget, []*unstructured.Unstructured{c1, c2}, review("p", obj{"a": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 {
		t.Fatalf("got %d results, want 1: %v", len(resp.Results), messages(resp))
	}
	r := resp.Results[0]
	if r.Msg != `missing labels: {"b"}` || r.Constraint.GetName() != "need-b" {
		t.Errorf("result %q for %q", r.Msg, r.Constraint.GetName())
	}
	details, _ := r.Metadata["details"].(map[string]any)
	if missing, _ := details["missing"].([]any); len(missing) != 1 || missing[0] != "b" {
		t.Errorf("details = %#v", r.Metadata)
	}
	// The result carries the constraint passed, not a copy made per Query.
	if r.Constraint != c2 {
		t.Error("result does not carry the constraint passed to Query")
	}
	if resp, _ := d.Query(context.Background(), testTarget, nil, review("p", nil)); resp != nil && len(resp.Results) > 0 {
		t.Error("results without constraints")
	}
}

// TestDetailsDefault checks details default to {} and that a violation
// without msg is dropped.
func TestDetailsDefault(t *testing.T) {
	d := newDriver(t)
	c := constraint("K8sDetails", "c", nil)
	mustAdd(t, d, tmpl{kind: "K8sDetails", rego: `package x
violation[{"msg": "no details"}] { true }
violation[v] { v := {"msg": "with details", "details": {"a": 1}} }
violation[v] { v := object.remove({"msg": "dropped"}, ["msg"]) }
`}.build(), c)
	resp, err := d.Query(context.Background(), testTarget, []*unstructured.Unstructured{c}, review("p", nil))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, r := range resp.Results {
		got[r.Msg] = r.Metadata["details"]
	}
	if len(got) != 2 {
		t.Fatalf("results %v", messages(resp))
	}
	if d, ok := got["no details"].(map[string]any); !ok || len(d) != 0 {
		t.Errorf("details without details = %#v, want {}", got["no details"])
	}
	if d, ok := got["with details"].(map[string]any); !ok || len(d) != 1 {
		t.Errorf("details = %#v", got["with details"])
	}
}

func TestParametersDefaultToEmptyObject(t *testing.T) {
	d := newDriver(t)
	c := constraint("K8sParams", "c", nil)
	mustAdd(t, d, tmpl{kind: "K8sParams", rego: `package x
violation[{"msg": msg}] { msg := sprintf("%v", [input.parameters]) }
`}.build(), c)
	if got := query(t, d, []*unstructured.Unstructured{c}, review("p", nil)); !equal(got, []string{"c: {}"}) {
		t.Errorf("got %v", got)
	}
}

func TestNamespaceObject(t *testing.T) {
	d := newDriver(t)
	c := constraint("K8sNs", "c", nil)
	mustAdd(t, d, tmpl{kind: "K8sNs", rego: `package x
violation[{"msg": msg}] { msg := sprintf("%v", [input.review.namespaceObject]) }
`}.build(), c)
	ns := obj{"metadata": obj{"name": "default", "labels": obj{"team": "a"}}}
	got := query(t, d, []*unstructured.Unstructured{c}, review("p", nil), reviews.Namespace(ns))
	if !equal(got, []string{`c: {"metadata": {"labels": {"team": "a"}, "name": "default"}}`}) {
		t.Errorf("with a namespace: %v", got)
	}
	// Without one, as with the frameworks driver, it is {}.
	if got := query(t, d, []*unstructured.Unstructured{c}, review("p", nil)); !equal(got, []string{"c: {}"}) {
		t.Errorf("without a namespace: %v", got)
	}
}

const conflictRego = `package x
f(_) = 1 { true }
f(_) = 2 { true }
violation[{"msg": "unreachable"}] { f(input.parameters.n) == 3 }
`

// TestEvalErrorBecomesResults: a runtime error yields one result per
// constraint of the kind, whose message is the error, as with frameworks.
func TestEvalErrorBecomesResults(t *testing.T) {
	ours := newDriver(t)
	theirs, err := fwrego.New()
	if err != nil {
		t.Fatal(err)
	}
	c1 := constraint("K8sConflict", "one", obj{"n": int64(1)})
	c2 := constraint("K8sConflict", "two", obj{"n": int64(2)})
	ok := constraint("K8sRequiredLabels", "need-a", obj{"labels": []any{"a"}})
	cs := []*unstructured.Unstructured{c1, c2, ok}
	for _, d := range []drivers.Driver{ours, theirs} {
		mustAdd(t, d, tmpl{kind: "K8sConflict", rego: conflictRego}.build(), c1, c2)
		mustAdd(t, d, tmpl{kind: "K8sRequiredLabels", rego: requiredLabelsRego}.build(), ok)
	}
	got := query(t, ours, cs, review("p", nil))
	want := query(t, theirs, cs, review("p", nil))
	if len(got) != 3 {
		t.Fatalf("got %v, want 2 errors and 1 violation", got)
	}
	for _, m := range got[:2] {
		if !strings.Contains(m, "eval_conflict_error") {
			t.Errorf("result %q is not the evaluation error", m)
		}
	}
	sortStrings(got)
	sortStrings(want)
	if !equal(got, want) {
		t.Errorf("results differ from the frameworks driver:\n got %q\nwant %q", got, want)
	}
}

// TestNonStringMsgFailsQuery: a violation whose msg is not a string fails
// the whole Query, as with frameworks.
func TestNonStringMsgFailsQuery(t *testing.T) {
	ours := newDriver(t)
	theirs, err := fwrego.New()
	if err != nil {
		t.Fatal(err)
	}
	c := constraint("K8sNumberMsg", "c", nil)
	ok := constraint("K8sRequiredLabels", "need-a", obj{"labels": []any{"a"}})
	var errs []string
	for _, d := range []drivers.Driver{ours, theirs} {
		mustAdd(t, d, tmpl{kind: "K8sNumberMsg", rego: `package x
violation[{"msg": 5}] { true }
`}.build(), c)
		mustAdd(t, d, tmpl{kind: "K8sRequiredLabels", rego: requiredLabelsRego}.build(), ok)
		_, err := d.Query(context.Background(), testTarget, []*unstructured.Unstructured{ok, c}, review("p", nil))
		if err == nil {
			t.Fatalf("%T: Query succeeded with a numeric msg", d)
		}
		errs = append(errs, err.Error())
	}
	if errs[0] != errs[1] {
		t.Errorf("error %q, frameworks %q", errs[0], errs[1])
	}
}

const namespaceInventoryRego = `package x
violation[{"msg": msg}] {
	ns := input.review.object.metadata.namespace
	not data.inventory.cluster["v1"].Namespace[ns]
	msg := sprintf("namespace %v is not in the inventory", [ns])
}
`

// TestDataAfterTemplate: data added after the query was prepared is seen
// by the next Query, and removing it is too.
func TestDataAfterTemplate(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	c := constraint("K8sNsExists", "c", nil)
	mustAdd(t, d, tmpl{kind: "K8sNsExists", rego: namespaceInventoryRego}.build(), c)
	cs := []*unstructured.Unstructured{c}
	want := []string{"c: namespace default is not in the inventory"}
	if got := query(t, d, cs, review("p", nil)); !equal(got, want) {
		t.Fatalf("before AddData: %v", got)
	}
	path := storage.Path{"cluster", "v1", "Namespace", "default"}
	if err := d.AddData(ctx, testTarget, path, obj{"metadata": obj{"name": "default"}}); err != nil {
		t.Fatal(err)
	}
	if got := query(t, d, cs, review("p", nil)); len(got) != 0 {
		t.Fatalf("after AddData: %v", got)
	}
	if err := d.RemoveData(ctx, testTarget, path); err != nil {
		t.Fatal(err)
	}
	if got := query(t, d, cs, review("p", nil)); !equal(got, want) {
		t.Fatalf("after RemoveData: %v", got)
	}
	// Removing what is not there is fine.
	if err := d.RemoveData(ctx, testTarget, storage.Path{"cluster", "v1", "Nope"}); err != nil {
		t.Errorf("removing a missing path: %v", err)
	}
	// An empty path wipes the inventory; writing again still works.
	if err := d.AddData(ctx, testTarget, path, obj{}); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveData(ctx, testTarget, nil); err != nil {
		t.Fatal(err)
	}
	if got := query(t, d, cs, review("p", nil)); !equal(got, want) {
		t.Fatalf("after wiping: %v", got)
	}
	if err := d.AddData(ctx, testTarget, path, obj{}); err != nil {
		t.Fatal(err)
	}
	if got := query(t, d, cs, review("p", nil)); len(got) != 0 {
		t.Fatalf("after wiping and adding: %v", got)
	}
	// Data added before a template is seen too.
	c2 := constraint("K8sNsExists2", "c2", nil)
	mustAdd(t, d, tmpl{kind: "K8sNsExists2", rego: namespaceInventoryRego}.build(), c2)
	if got := query(t, d, []*unstructured.Unstructured{c2}, review("p", nil)); len(got) != 0 {
		t.Fatalf("template added after data: %v", got)
	}
}

func TestInventoryForbidden(t *testing.T) {
	d := newDriver(t, regodriver.Externs())
	err := d.AddTemplate(context.Background(), tmpl{kind: "K8sNsExists", rego: namespaceInventoryRego}.build())
	if !errors.Is(err, clienterrors.ErrInvalidConstraintTemplate) || !strings.Contains(err.Error(), "disallowed ref data.inventory") {
		t.Errorf("AddTemplate = %v, want a disallowed ref", err)
	}
	if _, err := regodriver.New(regodriver.Externs("secrets")); !errors.Is(err, clienterrors.ErrCreatingDriver) {
		t.Errorf("Externs(secrets) = %v", err)
	}
}

func TestRemoveTemplate(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	ct := tmpl{kind: "K8sRequiredLabels", rego: requiredLabelsRego}.build()
	c := constraint("K8sRequiredLabels", "need-a", obj{"labels": []any{"a"}})
	other := constraint("K8sOther", "o", nil)
	mustAdd(t, d, ct, c)
	mustAdd(t, d, tmpl{kind: "K8sOther", rego: `package x
violation[{"msg": "other"}] { true }
`}.build(), other)
	cs := []*unstructured.Unstructured{c}
	if got := query(t, d, cs, review("p", nil)); len(got) != 1 {
		t.Fatalf("before removal: %v", got)
	}
	if err := d.RemoveTemplate(ctx, ct); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Query(ctx, testTarget, cs, review("p", nil)); err == nil || !strings.Contains(err.Error(), "missing Template") {
		t.Errorf("Query after removal = %v, want a missing Template error", err)
	}
	// Other templates are untouched.
	if got := query(t, d, []*unstructured.Unstructured{other}, review("p", nil)); !equal(got, []string{"o: other"}) {
		t.Errorf("other template: %v", got)
	}
	// Removing twice is fine; re-adding does not bring the constraints back.
	if err := d.RemoveTemplate(ctx, ct); err != nil {
		t.Errorf("second removal: %v", err)
	}
	mustAdd(t, d, ct)
	if got := query(t, d, cs, review("p", nil)); len(got) != 0 {
		t.Errorf("constraint survived its template: %v", got)
	}
	if err := d.AddConstraint(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := query(t, d, cs, review("p", nil)); len(got) != 1 {
		t.Errorf("after re-adding: %v", got)
	}
	if err := d.RemoveConstraint(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := query(t, d, cs, review("p", nil)); len(got) != 0 {
		t.Errorf("after RemoveConstraint: %v", got)
	}
}

// TestReplaceTemplate: re-adding a kind with new Rego keeps its
// constraints and uses the new code.
func TestReplaceTemplate(t *testing.T) {
	d := newDriver(t)
	c := constraint("K8sSwap", "c", nil)
	mustAdd(t, d, tmpl{kind: "K8sSwap", rego: "package x\nviolation[{\"msg\": \"old\"}] { true }\n"}.build(), c)
	mustAdd(t, d, tmpl{kind: "K8sSwap", rego: "package x\nviolation[{\"msg\": \"new\"}] { true }\n"}.build())
	if got := query(t, d, []*unstructured.Unstructured{c}, review("p", nil)); !equal(got, []string{"c: new"}) {
		t.Errorf("got %v", got)
	}
	// A template that fails to compile leaves the old one in place.
	if err := d.AddTemplate(context.Background(), tmpl{kind: "K8sSwap", rego: "package x\nviolation[{\"msg\": m}] { m := undefined_fn(1) }\n"}.build()); !errors.Is(err, clienterrors.ErrCompile) {
		t.Errorf("AddTemplate = %v, want ErrCompile", err)
	}
	if got := query(t, d, []*unstructured.Unstructured{c}, review("p", nil)); !equal(got, []string{"c: new"}) {
		t.Errorf("after a failed replacement: %v", got)
	}
}

const httpSendRego = `package x
violation[{"msg": "x"}] { http.send({"method": "get", "url": "http://localhost:1"}) }
`

func TestDisabledBuiltins(t *testing.T) {
	d := newDriver(t, regodriver.DisableBuiltins("http.send"))
	err := d.AddTemplate(context.Background(), tmpl{kind: "K8sHTTP", rego: httpSendRego}.build())
	if !errors.Is(err, clienterrors.ErrCompile) || !strings.Contains(err.Error(), "http.send") {
		t.Errorf("AddTemplate = %v, want a compile error about http.send", err)
	}
	// Without the option, http.send is available, as with frameworks.
	if err := newDriver(t).AddTemplate(context.Background(), tmpl{kind: "K8sHTTP", rego: httpSendRego}.build()); err != nil {
		t.Errorf("http.send refused by default at the driver level: %v", err)
	}
}

func TestTemplateContract(t *testing.T) {
	tests := []struct {
		name    string
		tmpl    tmpl
		wantErr string // substring; "" means accepted
		is      error
	}{
		{name: "import rego.v1", tmpl: tmpl{rego: "package x\nimport rego.v1\nviolation contains {\"msg\": \"x\"} if { true }\n"},
			wantErr: "bad import", is: clienterrors.ErrInvalidConstraintTemplate},
		{name: "import rego.v1 in a v1 source", tmpl: tmpl{version: "v1", rego: "package x\nimport rego.v1\nviolation contains {\"msg\": \"x\"} if { true }\n"},
			wantErr: "bad import", is: clienterrors.ErrInvalidConstraintTemplate},
		{name: "import input", tmpl: tmpl{rego: "package x\nimport input.review\nviolation[{\"msg\": \"x\"}] { true }\n"},
			wantErr: "cannot import input"},
		{name: "import data.foo", tmpl: tmpl{rego: "package x\nimport data.foo\nviolation[{\"msg\": \"x\"}] { true }\n"},
			wantErr: "bad import"},
		{name: "future keywords in v0", tmpl: tmpl{rego: "package x\nimport future.keywords.in\nimport future.keywords.if\nimport future.keywords.contains\nviolation contains {\"msg\": \"x\"} if { 1 in [1] }\n"}},
		{name: "disallowed data ref", tmpl: tmpl{rego: "package x\nviolation[{\"msg\": \"x\"}] { data.foo.bar }\n"},
			wantErr: "disallowed ref data.foo.bar"},
		{name: "no violation rule", tmpl: tmpl{rego: "package x\nallow { true }\n"},
			wantErr: "missing required rules: [violation]", is: clienterrors.ErrInvalidConstraintTemplate},
		{name: "parse error", tmpl: tmpl{rego: "package x\nviolation[{\"msg\": m}] { m := }\n"},
			wantErr: "rego_parse_error", is: clienterrors.ErrParse},
		{name: "v1 syntax in a v0 source", tmpl: tmpl{rego: "package x\nviolation contains {\"msg\": \"x\"} if { true }\n"},
			wantErr: "rego_parse_error"},
		{name: "v0 syntax in a v1 source", tmpl: tmpl{version: "v1", rego: "package x\nviolation[{\"msg\": \"x\"}] { true }\n"},
			wantErr: "rego_parse_error"},
		{name: "deprecated builtin in v1", tmpl: tmpl{version: "v1", rego: "package x\nviolation contains {\"msg\": \"x\"} if { any([true]) }\n"},
			wantErr: "rego_type_error", is: clienterrors.ErrCompile},
		{name: "msg missing statically", tmpl: tmpl{rego: "package x\nviolation[{\"message\": \"x\"}] { true }\n"},
			wantErr: "rego_type_error", is: clienterrors.ErrCompile},
		{name: "lib", tmpl: tmpl{rego: "package x\nimport data.lib.helpers\nviolation[{\"msg\": helpers.m}] { true }\n",
			libs: []string{"package lib.helpers\nm := \"from lib\"\n"}}},
		{name: "lib with a bad package", tmpl: tmpl{rego: "package x\nviolation[{\"msg\": \"x\"}] { true }\n",
			libs: []string{"package helpers\nm := 1\n"}}, wantErr: "lib prefix"},
		{name: "lib package is the lib root", tmpl: tmpl{rego: "package x\nviolation[{\"msg\": \"x\"}] { true }\n",
			libs: []string{"package lib\nm := 1\n"}}, wantErr: "lib prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.tmpl.kind = "K8sContract"
			err := newDriver(t).AddTemplate(context.Background(), tc.tmpl.build())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("AddTemplate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("AddTemplate = %v, want an error containing %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

func TestLibs(t *testing.T) {
	d := newDriver(t)
	c := constraint("K8sLib", "c", obj{"prefix": "hello"})
	mustAdd(t, d, tmpl{kind: "K8sLib", rego: `package whatever.pkg
import data.lib.greet
violation[{"msg": greet.hello(input.parameters.prefix)}] { true }
`, libs: []string{`package lib.greet
hello(p) = s { s := concat(" ", [p, world]) }
`, `package lib.greet
world := "world"
`}}.build(), c)
	if got := query(t, d, []*unstructured.Unstructured{c}, review("p", nil)); !equal(got, []string{"c: hello world"}) {
		t.Errorf("got %v", got)
	}
}

func TestRegoV1Source(t *testing.T) {
	d := newDriver(t)
	c := constraint("K8sV1", "c", obj{"labels": []any{"a", "b"}})
	mustAdd(t, d, tmpl{kind: "K8sV1", version: "v1", rego: `package x
violation contains {"msg": msg} if {
	some l in input.parameters.labels
	not input.review.object.metadata.labels[l]
	msg := sprintf("missing %s", [l])
}
`, libs: []string{"package lib.v1\nok if { true }\n"}}.build(), c)
	got := query(t, d, []*unstructured.Unstructured{c}, review("p", obj{"a": "1"}))
	if !equal(got, []string{"c: missing b"}) {
		t.Errorf("got %v", got)
	}
}

func TestTracing(t *testing.T) {
	d := newDriver(t)
	c := constraint("K8sTrace", "c", nil)
	mustAdd(t, d, tmpl{kind: "K8sTrace", rego: "package x\nviolation[{\"msg\": \"x\"}] { true }\n"}.build(), c)
	cs := []*unstructured.Unstructured{c}
	resp, err := d.Query(context.Background(), testTarget, cs, review("p", nil))
	if err != nil || resp.Trace != nil {
		t.Fatalf("untraced Query: trace %v, err %v", resp.Trace, err)
	}
	resp, err = d.Query(context.Background(), testTarget, cs, review("p", nil), reviews.Tracing(true), reviews.Stats(true))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Trace == nil || !strings.Contains(*resp.Trace, "Enter data.template.violation") {
		t.Errorf("trace = %v", resp.Trace)
	}
	if len(resp.StatsEntries) != 1 || resp.StatsEntries[0].StatsFor != "K8sTrace" {
		t.Errorf("stats = %v", resp.StatsEntries)
	}
	for _, s := range resp.StatsEntries[0].Stats {
		if _, err := d.GetDescriptionForStat(s.Name); err != nil {
			t.Errorf("stat %s: %v", s.Name, err)
		}
	}
	if dump, err := d.Dump(context.Background()); err != nil || !strings.Contains(dump, "K8sTrace") {
		t.Errorf("Dump = %q, %v", dump, err)
	}
}

// TestConcurrentQueries runs Queries while templates, constraints and data
// change; run with -race.
func TestConcurrentQueries(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	c := constraint("K8sRequiredLabels", "need-a", obj{"labels": []any{"a"}})
	mustAdd(t, d, tmpl{kind: "K8sRequiredLabels", rego: requiredLabelsRego}.build(), c)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := d.Query(ctx, testTarget, []*unstructured.Unstructured{c}, review("p", nil))
				if err != nil || len(resp.Results) != 1 {
					t.Errorf("Query: %v, %v", err, resp)
					return
				}
			}
		})
	}
	for i := range 20 {
		mustAdd(t, d, tmpl{kind: "K8sOther", rego: "package x\nviolation[{\"msg\": \"x\"}] { true }\n"}.build(),
			constraint("K8sOther", "o", nil))
		if err := d.AddData(ctx, testTarget, storage.Path{"cluster", "v1", "Namespace", "n"}, obj{"i": int64(i)}); err != nil {
			t.Error(err)
		}
		if err := d.AddConstraint(ctx, c); err != nil {
			t.Error(err)
		}
		if err := d.RemoveTemplate(ctx, tmpl{kind: "K8sOther"}.build()); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestEngineDisablesHTTPSend: the engine refuses http.send unless
// Options.EnableHTTPSend is set.
func TestEngineDisablesHTTPSend(t *testing.T) {
	ct := func() *templates.ConstraintTemplate {
		u := &unstructured.Unstructured{Object: obj{
			"apiVersion": "templates.gatekeeper.sh/v1",
			"kind":       "ConstraintTemplate",
			"metadata":   obj{"name": "k8shttp"},
			"spec": obj{
				"crd": obj{"spec": obj{"names": obj{"kind": "K8sHTTP"}}},
				"targets": []any{obj{
					"target": engine.TargetName,
					"rego":   httpSendRego,
				}},
			},
		}}
		ct, err := engine.ParseTemplate(u)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	e, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddTemplate(context.Background(), ct()); err == nil || !strings.Contains(err.Error(), "http.send") {
		t.Errorf("AddTemplate with http.send = %v, want an error about http.send", err)
	}
	e, err = engine.New(engine.Options{EnableHTTPSend: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddTemplate(context.Background(), ct()); err != nil {
		t.Errorf("AddTemplate with EnableHTTPSend: %v", err)
	}
}
