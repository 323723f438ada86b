package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// celCode is a K8sNativeValidation code entry whose source is YAML.
func celCode(t testing.TB, sourceYAML string) obj {
	return obj{"engine": EngineCEL, "source": fromYAML(t, sourceYAML)}
}

func regoCode(rego string) obj {
	return obj{"engine": EngineRego, "source": obj{"rego": rego}}
}

const celNeedsOwner = `
validations:
- expression: 'has(variables.anyObject.metadata.labels) && "owner" in variables.anyObject.metadata.labels'
  messageExpression: '"cel: " + variables.anyObject.metadata.name + " has no owner"'
`

const regoNeedsOwner = `package x
violation[{"msg": msg}] {
  not input.review.object.metadata.labels.owner
  msg := sprintf("rego: %v has no owner", [input.review.object.metadata.name])
}
`

func TestCELOnlyTemplate(t *testing.T) {
	for _, disable := range []bool{false, true} {
		ct := newTemplate(t, "K8sCELOwner", "", withCode(celCode(t, celNeedsOwner)))
		e := newEngine(t, Options{DisableK8sNativeValidation: disable}, ct)
		if got := e.TemplateEngine("K8sCELOwner"); got != EngineCEL {
			t.Errorf("disable=%v: engine %q, want %s", disable, got, EngineCEL)
		}
		mustAddConstraint(t, e, newConstraint(t, "K8sCELOwner", "owner", `{match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}}`))
		got := messages(mustReview(t, e, &Object{Object: pod("default", "p", nil)}, EnforcementPointAudit))
		if !equalStrings(got, []string{"cel: p has no owner"}) {
			t.Errorf("disable=%v: audit %q", disable, got)
		}
		adm := &Admission{Request: request(t, admissionv1.Create, pod("default", "q", nil), nil)}
		got = messages(mustReview(t, e, adm, EnforcementPointWebhook))
		if !equalStrings(got, []string{"cel: q has no owner"}) {
			t.Errorf("disable=%v: webhook %q", disable, got)
		}
		got = messages(mustReview(t, e, &Object{Object: pod("default", "p", map[string]string{"owner": "me"})}, EnforcementPointAudit))
		if len(got) != 0 {
			t.Errorf("disable=%v: owned pod %q", disable, got)
		}
	}
}

func TestEngineChoice(t *testing.T) {
	both := func() []tmplOpt {
		return []tmplOpt{withCode(regoCode(regoNeedsOwner), celCode(t, celNeedsOwner))}
	}
	for _, tc := range []struct {
		name    string
		opts    Options
		engine  string
		message string
	}{
		{"CEL first by default", Options{}, EngineCEL, "cel: p has no owner"},
		{"Rego when K8s native validation is disabled", Options{DisableK8sNativeValidation: true}, EngineRego, "rego: p has no owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, tc.opts, newTemplate(t, "K8sBoth", "", both()...), newTemplate(t, alwaysKind, alwaysViolateRego))
			if got := e.TemplateEngine("K8sBoth"); got != tc.engine {
				t.Errorf("engine %q, want %s", got, tc.engine)
			}
			if got := e.TemplateEngine(alwaysKind); got != EngineRego {
				t.Errorf("Rego-only template: engine %q", got)
			}
			wantCounts := map[string]int{EngineRego: 2}
			if tc.engine == EngineCEL {
				wantCounts = map[string]int{EngineRego: 1, EngineCEL: 1}
			}
			if got := e.TemplatesByEngine(); fmt.Sprint(got) != fmt.Sprint(wantCounts) {
				t.Errorf("templates by engine %v, want %v", got, wantCounts)
			}
			mustAddConstraint(t, e, newConstraint(t, "K8sBoth", "owner", ""))
			mustAddConstraint(t, e, newConstraint(t, alwaysKind, "always", ""))
			// Both drivers answer one review; results are sorted by kind.
			got := messages(mustReview(t, e, &Object{Object: pod("default", "p", nil)}, EnforcementPointGator))
			if !equalStrings(got, sortedCopy([]string{tc.message, "bad"})) {
				t.Errorf("messages %q, want %q and bad", got, tc.message)
			}
		})
	}
}

func TestCELDeleteAndNamespaceObject(t *testing.T) {
	ct := newTemplate(t, "K8sCELNs", "", withCode(celCode(t, `
validations:
- expression: 'object == null || request.operation != "DELETE"'
  message: object is set on DELETE
- expression: 'namespaceObject == null || (has(namespaceObject.metadata.labels) && "team" in namespaceObject.metadata.labels)'
  messageExpression: '"namespace " + namespaceObject.metadata.name + " has no team; deleting " + variables.anyObject.metadata.name'
`)))
	e := newEngine(t, Options{}, ct)
	mustAddConstraint(t, e, newConstraint(t, "K8sCELNs", "team", ""))
	p := pod("dev", "p", nil)
	adm := &Admission{Request: request(t, admissionv1.Delete, nil, p), Namespace: namespace("dev", nil)}
	got := messages(mustReview(t, e, adm, EnforcementPointWebhook))
	if !equalStrings(got, []string{"namespace dev has no team; deleting p"}) {
		t.Errorf("messages %q", got)
	}
	// A Namespace synced as data serves namespaceObject too.
	mustAddData(t, e, namespaceU("dev", map[string]string{"team": "a"}))
	adm = &Admission{Request: request(t, admissionv1.Create, p, nil)}
	if got := messages(mustReview(t, e, adm, EnforcementPointWebhook)); len(got) != 0 {
		t.Errorf("with the synced namespace: %q", got)
	}
}

func TestCELCompileErrorIsLocated(t *testing.T) {
	ct := newTemplate(t, "K8sCELBad", "", withCode(regoCode(alwaysViolateRego), celCode(t, `
variables:
- name: ok
  expression: 'true'
validations:
- expression: 'variables.ok'
- expression: 'variables.ok'
- expression: 'object.metadata.name +'
`)))
	e := newEngine(t, Options{})
	err := e.AddTemplate(context.Background(), ct)
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a CompileError", err, err)
	}
	if ce.Field != "spec.targets[0].code[1].source.validations[2].expression" || !strings.Contains(ce.Message, "Syntax error") {
		t.Errorf("compile error at %s: %s", ce.Field, ce.Message)
	}
	if !errors.Is(err, ErrInvalidTemplate) {
		t.Errorf("%v is not ErrInvalidTemplate", err)
	}
	if kinds := e.TemplateKinds(); len(kinds) != 0 {
		t.Errorf("kinds %v held after a refused template", kinds)
	}
	// With CEL disabled the Rego runs, and the CEL is not compiled, as in
	// Gatekeeper.
	e = newEngine(t, Options{DisableK8sNativeValidation: true}, ct)
	if got := e.TemplateEngine("K8sCELBad"); got != EngineRego {
		t.Errorf("engine %q", got)
	}
}

func TestCELFailurePolicyInEngine(t *testing.T) {
	src := `
validations:
- expression: 'object.spec.nope == 1'
`
	e := newEngine(t, Options{},
		newTemplate(t, "K8sCELFail", "", withCode(celCode(t, src))),
		newTemplate(t, "K8sCELIgnore", "", withCode(celCode(t, "failurePolicy: Ignore\n"+src))))
	mustAddConstraint(t, e, newConstraint(t, "K8sCELFail", "fail", ""))
	mustAddConstraint(t, e, newConstraint(t, "K8sCELIgnore", "ignore", ""))
	vs := mustReview(t, e, &Object{Object: pod("default", "p", nil)}, EnforcementPointAudit)
	if len(vs) != 1 || vs[0].Constraint.GetName() != "fail" ||
		vs[0].Message != "expression 'object.spec.nope == 1' resulted in error: no such key: spec" || vs[0].EnforcementAction != ActionDeny {
		t.Errorf("violations %+v", vs)
	}
}

func TestDefaultK8sNativeValidationFailurePolicy(t *testing.T) {
	if _, err := New(Options{DefaultK8sNativeValidationFailurePolicy: "Sometimes"}); err == nil {
		t.Error("New accepted the failure policy Sometimes")
	}
	e := newEngine(t, Options{DefaultK8sNativeValidationFailurePolicy: "Ignore"},
		newTemplate(t, "K8sCELErr", "", withCode(celCode(t, "validations:\n- expression: 'object.spec.nope == 1'\n"))))
	mustAddConstraint(t, e, newConstraint(t, "K8sCELErr", "c", ""))
	if vs := mustReview(t, e, &Object{Object: pod("default", "p", nil)}, EnforcementPointAudit); len(vs) != 0 {
		t.Errorf("violations %+v, want none under the default Ignore", vs)
	}
}
