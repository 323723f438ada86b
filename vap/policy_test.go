package vap

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// celTemplate is a template of kind Labels with the given CEL source and
// operations.
func celTemplate(source map[string]any, ops ...admissionregistrationv1.OperationType) *templates.ConstraintTemplate {
	ct := &templates.ConstraintTemplate{}
	ct.SetName("labels")
	ct.Spec.CRD.Spec.Names.Kind = "Labels"
	ct.Spec.Targets = []templates.Target{{
		Target:     "admission.k8s.gatekeeper.sh",
		Operations: ops,
		Code:       []templates.Code{{Engine: "K8sNativeValidation", Source: &templates.Anything{Value: source}}},
	}}
	return ct
}

func source(extra map[string]any) map[string]any {
	s := map[string]any{
		"validations":    []any{map[string]any{"expression": "has(object.metadata.labels)", "message": "no labels"}},
		"variables":      []any{map[string]any{"name": "labels", "expression": "object.metadata.labels"}},
		"matchCondition": []any{map[string]any{"name": "not-kube", "expression": "true"}},
	}
	maps.Copy(s, extra)
	return s
}

func names[T any](items []T, name func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = name(it)
	}
	return out
}

func conditionNames(p *admissionregistrationv1.ValidatingAdmissionPolicy) []string {
	return names(p.Spec.MatchConditions, func(c admissionregistrationv1.MatchCondition) string { return c.Name })
}

func TestPolicy(t *testing.T) {
	p, warning, err := Policy(celTemplate(source(nil)), PolicyInput{Namespace: "portcullis-system", Exempt: []string{"portcullis-system"}})
	if err != nil || warning != "" {
		t.Fatalf("Policy: %v, warning %q", err, warning)
	}
	if p.Name != "gatekeeper-labels" || p.APIVersion != "admissionregistration.k8s.io/v1" || p.Kind != "ValidatingAdmissionPolicy" {
		t.Errorf("%s %s %s", p.APIVersion, p.Kind, p.Name)
	}
	if *p.Spec.ParamKind != (admissionregistrationv1.ParamKind{APIVersion: "constraints.gatekeeper.sh/v1beta1", Kind: "Labels"}) {
		t.Errorf("paramKind %+v", p.Spec.ParamKind)
	}
	if *p.Spec.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("failurePolicy %s", *p.Spec.FailurePolicy)
	}
	wantConds := []string{"not-kube", ConditionExcludedNamespaces, ConditionNamespaces, ConditionName, ConditionKinds, ConditionScope, ConditionGlobalExemptedNamespaces}
	if got := conditionNames(p); !slices.Equal(got, wantConds) {
		t.Errorf("match conditions %v, want %v", got, wantConds)
	}
	vars := names(p.Spec.Variables, func(v admissionregistrationv1.Variable) string { return v.Name })
	if !slices.Equal(vars, []string{"anyObject", "params", "labels"}) {
		t.Errorf("variables %v", vars)
	}
	if len(p.Spec.Validations) != 1 || p.Spec.Validations[0] != (admissionregistrationv1.Validation{Expression: "has(object.metadata.labels)", Message: "no labels"}) {
		t.Errorf("validations %+v", p.Spec.Validations)
	}
	// Without the webhook's scope: CREATE and UPDATE of everything but
	// Portcullis's namespace, with the API server's defaults set.
	mc := p.Spec.MatchConstraints
	if len(mc.ResourceRules) != 1 || !slices.Equal(mc.ResourceRules[0].Operations, []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}) ||
		*mc.ResourceRules[0].Scope != admissionregistrationv1.AllScopes || *mc.MatchPolicy != admissionregistrationv1.Equivalent || mc.ObjectSelector == nil {
		t.Errorf("matchConstraints %+v", mc)
	}
	if r := mc.NamespaceSelector.MatchExpressions; len(r) != 1 || r[0].Key != "kubernetes.io/metadata.name" || r[0].Operator != metav1.LabelSelectorOpNotIn || r[0].Values[0] != "portcullis-system" {
		t.Errorf("namespaceSelector %+v", mc.NamespaceSelector)
	}
}

func TestPolicyFailurePolicy(t *testing.T) {
	for _, tt := range []struct {
		name, source, def string
		want              admissionregistrationv1.FailurePolicyType
	}{
		{"default", "", "", admissionregistrationv1.Fail},
		{"flag", "", "Ignore", admissionregistrationv1.Ignore},
		{"source over flag", "Fail", "Ignore", admissionregistrationv1.Fail},
		{"source", "Ignore", "", admissionregistrationv1.Ignore},
	} {
		extra := map[string]any{}
		if tt.source != "" {
			extra["failurePolicy"] = tt.source
		}
		p, _, err := Policy(celTemplate(source(extra)), PolicyInput{DefaultFailurePolicy: tt.def})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if *p.Spec.FailurePolicy != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, *p.Spec.FailurePolicy, tt.want)
		}
	}
	if _, _, err := Policy(celTemplate(source(nil)), PolicyInput{DefaultFailurePolicy: "Sometimes"}); err == nil {
		t.Error("an unknown default failure policy was taken")
	}
}

func webhookScope() *Scope {
	return &Scope{
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{"CREATE", "UPDATE"},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*", "pods/exec"}, Scope: ptr.To(admissionregistrationv1.AllScopes)},
		}},
		NamespaceSelector:  &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: IgnoreLabel, Operator: metav1.LabelSelectorOpDoesNotExist}}},
		MatchPolicy:        ptr.To(admissionregistrationv1.Exact),
		MatchConditions:    []admissionregistrationv1.MatchCondition{{Name: "webhook-condition", Expression: "true"}},
		ExcludedNamespaces: []string{"kube-*"},
	}
}

// TestPolicyScope: the webhook's rules, selectors and conditions, and the
// Config's exclusions.
func TestPolicyScope(t *testing.T) {
	p, warning, err := Policy(celTemplate(source(nil)), PolicyInput{Scope: webhookScope(), Exempt: []string{"free"}})
	if err != nil || warning != "" {
		t.Fatalf("Policy: %v, warning %q", err, warning)
	}
	want := []string{"not-kube", ConditionExcludedNamespaces, ConditionNamespaces, ConditionName, ConditionKinds, ConditionScope,
		ConditionGlobalExcludedNamespaces, ConditionGlobalExemptedNamespaces, "webhook-condition"}
	if got := conditionNames(p); !slices.Equal(got, want) {
		t.Errorf("match conditions %v, want %v", got, want)
	}
	if c := p.Spec.MatchConditions[6].Expression; !strings.Contains(c, `"kube-*"`) {
		t.Errorf("excluded namespaces condition %s", c)
	}
	mc := p.Spec.MatchConstraints
	if *mc.MatchPolicy != admissionregistrationv1.Exact || mc.NamespaceSelector.MatchExpressions[0].Key != IgnoreLabel ||
		!slices.Equal(mc.ResourceRules[0].Resources, []string{"*", "pods/exec"}) {
		t.Errorf("matchConstraints %+v", mc)
	}
	// Nothing excluded, nothing exempt: no condition for them.
	p, _, err = Policy(celTemplate(source(nil)), PolicyInput{Scope: &Scope{Rules: webhookScope().Rules}})
	if err != nil {
		t.Fatal(err)
	}
	if got := conditionNames(p); slices.Contains(got, ConditionGlobalExcludedNamespaces) || slices.Contains(got, ConditionGlobalExemptedNamespaces) {
		t.Errorf("match conditions %v", got)
	}
}

// TestPolicyOperations: the policy's operations are those the template
// and the webhook have in common.
func TestPolicyOperations(t *testing.T) {
	scope := webhookScope()
	scope.Rules[0].Operations = []admissionregistrationv1.OperationType{"CREATE", "UPDATE", "DELETE"}
	for _, tt := range []struct {
		name    string
		ops     []admissionregistrationv1.OperationType
		want    []admissionregistrationv1.OperationType
		warning bool
		err     error
	}{
		{"none listed: the webhook's", nil, []admissionregistrationv1.OperationType{"CREATE", "UPDATE", "DELETE"}, false, nil},
		{"a subset", []admissionregistrationv1.OperationType{"DELETE", "CREATE"}, []admissionregistrationv1.OperationType{"CREATE", "DELETE"}, false, nil},
		{"*", []admissionregistrationv1.OperationType{"*"}, []admissionregistrationv1.OperationType{"CREATE", "UPDATE", "DELETE"}, true, nil},
		{"some in common", []admissionregistrationv1.OperationType{"CREATE", "CONNECT"}, []admissionregistrationv1.OperationType{"CREATE"}, true, nil},
		{"none in common", []admissionregistrationv1.OperationType{"CONNECT"}, nil, false, ErrOperationNoMatch},
	} {
		p, warning, err := Policy(celTemplate(source(nil), tt.ops...), PolicyInput{Scope: scope})
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if got := p.Spec.MatchConstraints.ResourceRules[0].Operations; !slices.Equal(got, tt.want) {
			t.Errorf("%s: operations %v, want %v", tt.name, got, tt.want)
		}
		if (warning != "") != tt.warning {
			t.Errorf("%s: warning %q", tt.name, warning)
		}
	}
}

func TestGeneratesPolicy(t *testing.T) {
	for _, tt := range []struct {
		name  string
		extra map[string]any
		def   bool
		want  bool
	}{
		{"flag on", nil, true, true},
		{"flag off", nil, false, false},
		{"generateVAP false", map[string]any{"generateVAP": false}, true, false},
		{"generateVAP true", map[string]any{"generateVAP": true}, false, true},
	} {
		got, err := GeneratesPolicy(celTemplate(source(tt.extra)), tt.def)
		if err != nil || got != tt.want {
			t.Errorf("%s: %v (%v), want %v", tt.name, got, err, tt.want)
		}
	}
	rego := &templates.ConstraintTemplate{Spec: templates.ConstraintTemplateSpec{Targets: []templates.Target{{Target: "admission.k8s.gatekeeper.sh", Rego: "package x"}}}}
	if _, err := GeneratesPolicy(rego, true); !errors.Is(err, ErrNoCEL) {
		t.Errorf("a Rego template: %v, want ErrNoCEL", err)
	}
	if _, _, err := Policy(rego, PolicyInput{}); !errors.Is(err, ErrNoCEL) {
		t.Errorf("Policy of a Rego template: %v, want ErrNoCEL", err)
	}
	bad := celTemplate(map[string]any{"validations": "not a list"})
	if _, err := GeneratesPolicy(bad, true); err == nil || errors.Is(err, ErrNoCEL) {
		t.Errorf("an invalid source: %v", err)
	}
}
