package controllers

import (
	"errors"
	"fmt"
	"testing"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine"
)

func TestStatusErrorLocation(t *testing.T) {
	ce := &engine.CompileError{Template: "t", Field: "spec.targets[0].rego", Row: 4, Col: 10, Message: "rego_type_error: undefined function f"}
	tests := []struct {
		name     string
		err      error
		location string
	}{
		{"compile error", fmt.Errorf("%w: %w", engine.ErrInvalidTemplate, ce), "spec.targets[0].rego:4:10"},
		{"no position", &engine.CompileError{Field: "spec.targets[0].rego", Message: "m"}, "spec.targets[0].rego"},
		{"CEL compile error", celCompileError(t), "spec.targets[0].code[0].source.validations[0].expression"},
		{"other", errors.New("boom"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := statusError(CodeIngest, tc.err)
			if got.Code != CodeIngest || got.Location != tc.location || got.Message != tc.err.Error() {
				t.Errorf("statusError = %+v, want location %q and the error's message", got, tc.location)
			}
		})
	}
}

// me is the replica the status tests write as.
var me = Replica{ID: "me", Operations: []string{"webhook", "audit"}}

func TestTemplateStatus(t *testing.T) {
	ingest := templatesv1.CreateCRDError{Code: CodeIngest, Message: "bad rego", Location: "spec.targets[0].rego:1:2"}
	tests := []struct {
		name    string
		cur     map[string]any
		res     templateResult
		created bool
		ready   string
		reason  string
		entries int
	}{
		{
			name:    "loaded",
			res:     templateResult{generation: 1, created: true, crdName: "x.constraints.gatekeeper.sh"},
			created: true, ready: "True", reason: ReasonReady, entries: 1,
		},
		{
			name:    "ingest error",
			res:     templateResult{generation: 1, errors: []templatesv1.CreateCRDError{ingest}},
			created: false, ready: "False", reason: ReasonIngestError, entries: 1,
		},
		{
			name:    "created stays true after an error",
			cur:     map[string]any{"created": true},
			res:     templateResult{generation: 2, created: true, errors: []templatesv1.CreateCRDError{ingest}},
			created: true, ready: "False", reason: ReasonIngestError, entries: 1,
		},
		{
			name: "another replica's error on this generation",
			cur: map[string]any{"byPod": []any{
				map[string]any{"id": "other", "observedGeneration": int64(3), "errors": []any{
					map[string]any{"code": CodeUpdate, "message": "update failed"},
				}},
			}},
			res:     templateResult{generation: 3, created: true},
			created: true, ready: "False", reason: ReasonUpdateError, entries: 2,
		},
		{
			name: "another replica's error on an old generation",
			cur: map[string]any{"byPod": []any{
				map[string]any{"id": "other", "observedGeneration": int64(2), "errors": []any{
					map[string]any{"code": CodeIngest, "message": "old"},
				}},
			}},
			res:     templateResult{generation: 3, created: true},
			created: true, ready: "True", reason: ReasonReady, entries: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := templateStatus(tc.cur, me, "uid-1", tc.res)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: map[string]any{"status": got}}
			created, _, _ := unstructured.NestedBool(u.Object, "status", "created")
			if created != tc.created {
				t.Errorf("created = %t, want %t", created, tc.created)
			}
			entries, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
			if len(entries) != tc.entries {
				t.Errorf("byPod has %d entries, want %d: %v", len(entries), tc.entries, entries)
			}
			for _, e := range entries {
				m := e.(map[string]any)
				if m["id"] != "me" {
					continue
				}
				// Gatekeeper's fields; operations sorted.
				if m["templateUID"] != "uid-1" || fmt.Sprint(m["operations"]) != "[audit webhook]" || m["observedGeneration"] != tc.res.generation {
					t.Errorf("this replica's entry = %v, want templateUID, operations and observedGeneration", m)
				}
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			if len(conds) != 1 {
				t.Fatalf("conditions = %v, want one", conds)
			}
			c := conds[0].(map[string]any)
			if c["type"] != ConditionReady || c["status"] != tc.ready || c["reason"] != tc.reason || c["observedGeneration"] != tc.res.generation {
				t.Errorf("condition = %v, want Ready=%s reason %s at generation %d", c, tc.ready, tc.reason, tc.res.generation)
			}
			again, err := templateStatus(got, me, "uid-1", tc.res)
			if err != nil {
				t.Fatal(err)
			}
			if same, _ := jsonEqual(got, again); !same {
				t.Errorf("recomputing the status changed it:\n%v\n%v", got, again)
			}
		})
	}
}

func TestConstraintStatus(t *testing.T) {
	audit := map[string]any{"totalViolations": int64(3), "auditTimestamp": "2026-01-01T00:00:00Z"}
	got, err := constraintStatus(audit, me, constraintResult{uid: "c-uid", generation: 2, enforced: true})
	if err != nil {
		t.Fatal(err)
	}
	if got["totalViolations"] != int64(3) || got["auditTimestamp"] == nil {
		t.Errorf("audit fields not kept: %v", got)
	}
	e := got["byPod"].([]any)[0].(map[string]any)
	if e["id"] != "me" || e["enforced"] != true || e["observedGeneration"] != int64(2) || e["errors"] != nil ||
		e["constraintUID"] != "c-uid" || fmt.Sprint(e["operations"]) != "[audit webhook]" {
		t.Errorf("byPod entry = %v", e)
	}
	c := got["conditions"].([]any)[0].(map[string]any)
	if c["status"] != "True" || c["reason"] != ReasonEnforced {
		t.Errorf("condition = %v, want Ready=True", c)
	}

	bad, err := constraintStatus(got, me, constraintResult{uid: "c-uid", generation: 3, errors: []StatusError{{Code: CodeEnforcementAction, Message: "nope"}}})
	if err != nil {
		t.Fatal(err)
	}
	e = bad["byPod"].([]any)[0].(map[string]any)
	if e["enforced"] != false || len(bad["byPod"].([]any)) != 1 {
		t.Errorf("byPod = %v, want one entry, not enforced", bad["byPod"])
	}
	c = bad["conditions"].([]any)[0].(map[string]any)
	if c["status"] != "False" || c["reason"] != ReasonNotEnforced || c["message"] != "nope" {
		t.Errorf("condition = %v, want Ready=False with the error", c)
	}
}

// celCompileError is what the engine returns for a template whose CEL
// does not compile.
func celCompileError(t *testing.T) error {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "templates.gatekeeper.sh/v1",
		"kind":       "ConstraintTemplate",
		"metadata":   map[string]any{"name": "k8scel"},
		"spec": map[string]any{
			"crd": map[string]any{"spec": map[string]any{"names": map[string]any{"kind": "K8sCel"}}},
			"targets": []any{map[string]any{
				"target": engine.TargetName,
				"code": []any{map[string]any{
					"engine": engine.EngineCEL,
					"source": map[string]any{"validations": []any{map[string]any{"expression": "nope"}}},
				}},
			}},
		},
	}}
	ct, err := engine.ParseTemplate(u)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = e.AddTemplate(t.Context(), ct)
	if err == nil {
		t.Fatal("a template whose CEL does not compile was added")
	}
	return err
}
