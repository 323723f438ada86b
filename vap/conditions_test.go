package vap

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	admissioncel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"
)

// evalCondition evaluates one match condition as the API server does,
// compiled as a new policy's expressions are, with the constraint as
// params.
func evalCondition(t *testing.T, cond admissionregistrationv1.MatchCondition, constraint map[string]any, req request) bool {
	t.Helper()
	cc, err := admissioncel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		t.Fatal(err)
	}
	eval := cc.CompileCondition([]admissioncel.ExpressionAccessor{&matchconditions.MatchCondition{Name: cond.Name, Expression: cond.Expression}},
		admissioncel.OptionalVariableDeclarations{HasParams: true}, environment.NewExpressions)
	if errs := eval.CompilationErrors(); len(errs) > 0 {
		t.Fatalf("%s does not compile: %v", cond.Name, errs)
	}
	fp := admissionregistrationv1.Fail
	m := matchconditions.NewMatcher(eval, &fp, "policy", "test", "test")
	var obj, old runtime.Object
	if req.object != nil {
		obj = &unstructured.Unstructured{Object: req.object}
	}
	if req.oldObject != nil {
		old = &unstructured.Unstructured{Object: req.oldObject}
	}
	op := admission.Create
	if req.op != "" {
		op = req.op
	}
	a := admission.NewAttributesRecord(obj, old, req.kind, req.namespace, "", schema.GroupVersionResource{}, "", op, nil, false, &user.DefaultInfo{})
	res := m.Match(context.Background(), &admission.VersionedAttributes{Attributes: a, VersionedKind: req.kind, VersionedObject: obj, VersionedOldObject: old},
		&unstructured.Unstructured{Object: constraint}, nil)
	if res.Error != nil {
		t.Fatalf("%s: %v", cond.Name, res.Error)
	}
	return res.Matches
}

type request struct {
	kind              schema.GroupVersionKind
	namespace         string
	object, oldObject map[string]any
	op                admission.Operation
}

var (
	configMapKind = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	namespaceKind = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
	roleKind      = schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}
)

func obj(kind schema.GroupVersionKind, namespace, name string, labels map[string]any) request {
	meta := map[string]any{"name": name}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	if labels != nil {
		meta["labels"] = labels
	}
	return request{kind: kind, namespace: namespace, object: map[string]any{"apiVersion": kind.GroupVersion().String(), "kind": kind.Kind, "metadata": meta}}
}

func withMatch(match map[string]any) map[string]any {
	return map[string]any{"spec": map[string]any{"match": match}}
}

func conditionNamed(t *testing.T, conds []admissionregistrationv1.MatchCondition, name string) admissionregistrationv1.MatchCondition {
	t.Helper()
	for _, c := range conds {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no condition %s", name)
	return admissionregistrationv1.MatchCondition{}
}

// TestConstraintMatchConditions evaluates the translation of each match
// field, as the webhook matches: a constraint without the field matches
// everything.
func TestConstraintMatchConditions(t *testing.T) {
	cm := func(ns, name string) request { return obj(configMapKind, ns, name, nil) }
	nsObj := func(name string) request { return obj(namespaceKind, "", name, nil) }
	role := obj(roleKind, "", "admin", nil)
	deleted := cm("prod-a", "x")
	deleted.object, deleted.oldObject, deleted.op = nil, deleted.object, admission.Delete
	generated := cm("prod-a", "")
	generated.object["metadata"].(map[string]any)["generateName"] = "foo-"
	tests := []struct {
		name, cond string
		match      map[string]any
		req        request
		want       bool
	}{
		{"no spec.match", ConditionKinds, nil, cm("a", "x"), true},
		{"kind listed", ConditionKinds, map[string]any{"kinds": []any{map[string]any{"apiGroups": []any{""}, "kinds": []any{"ConfigMap"}}}}, cm("a", "x"), true},
		{"kind not listed", ConditionKinds, map[string]any{"kinds": []any{map[string]any{"apiGroups": []any{""}, "kinds": []any{"Pod"}}}}, cm("a", "x"), false},
		{"group not listed", ConditionKinds, map[string]any{"kinds": []any{map[string]any{"apiGroups": []any{"apps"}, "kinds": []any{"*"}}}}, cm("a", "x"), false},
		{"any kind", ConditionKinds, map[string]any{"kinds": []any{map[string]any{"apiGroups": []any{"*"}, "kinds": []any{"*"}}}}, role, true},

		{"namespace listed", ConditionNamespaces, map[string]any{"namespaces": []any{"prod-*"}}, cm("prod-a", "x"), true},
		{"namespace not listed", ConditionNamespaces, map[string]any{"namespaces": []any{"prod-*"}}, cm("dev", "x"), false},
		{"cluster-scoped, namespaces", ConditionNamespaces, map[string]any{"namespaces": []any{"prod-*"}}, role, true},
		{"Namespace by its name, listed", ConditionNamespaces, map[string]any{"namespaces": []any{"prod-*"}}, nsObj("prod-b"), true},
		{"Namespace by its name, not listed", ConditionNamespaces, map[string]any{"namespaces": []any{"prod-*"}}, nsObj("dev"), false},
		{"old object on DELETE", ConditionNamespaces, map[string]any{"namespaces": []any{"prod-*"}}, deleted, true},
		{"suffix wildcard", ConditionNamespaces, map[string]any{"namespaces": []any{"*-prod"}}, cm("a-prod", "x"), true},

		{"namespace excluded", ConditionExcludedNamespaces, map[string]any{"excludedNamespaces": []any{"kube-*"}}, cm("kube-system", "x"), false},
		{"namespace not excluded", ConditionExcludedNamespaces, map[string]any{"excludedNamespaces": []any{"kube-*"}}, cm("default", "x"), true},
		{"Namespace excluded by its name", ConditionExcludedNamespaces, map[string]any{"excludedNamespaces": []any{"kube-*"}}, nsObj("kube-public"), false},
		{"cluster-scoped, excludedNamespaces", ConditionExcludedNamespaces, map[string]any{"excludedNamespaces": []any{"kube-*"}}, role, true},

		{"name", ConditionName, map[string]any{"name": "foo-*"}, cm("a", "foo-1"), true},
		{"other name", ConditionName, map[string]any{"name": "foo-*"}, cm("a", "bar"), false},
		{"exact name", ConditionName, map[string]any{"name": "foo"}, cm("a", "foo-1"), false},
		{"generateName", ConditionName, map[string]any{"name": "foo-*"}, generated, true},

		{"Namespaced, in a namespace", ConditionScope, map[string]any{"scope": "Namespaced"}, cm("a", "x"), true},
		{"Namespaced, cluster-scoped", ConditionScope, map[string]any{"scope": "Namespaced"}, role, false},
		{"Namespaced, a Namespace", ConditionScope, map[string]any{"scope": "Namespaced"}, nsObj("a"), false},
		{"Cluster, cluster-scoped", ConditionScope, map[string]any{"scope": "Cluster"}, role, true},
		{"Cluster, in a namespace", ConditionScope, map[string]any{"scope": "Cluster"}, cm("a", "x"), false},
		{"any scope", ConditionScope, map[string]any{"scope": "*"}, role, true},
	}
	conds := constraintMatchConditions()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := withMatch(tt.match)
			if tt.match == nil {
				c = map[string]any{}
			}
			if got := evalCondition(t, conditionNamed(t, conds, tt.cond), c, tt.req); got != tt.want {
				t.Errorf("%s: %v, want %v", tt.cond, got, tt.want)
			}
		})
	}
}

// TestGlobalConditions evaluates the exclusions of the Config and of the
// exempt namespaces.
func TestGlobalConditions(t *testing.T) {
	excluded := globalExcluded([]string{"ex", "skip-*"})
	exempted := globalExempted([]string{"portcullis-system", "free-*"})
	ignore := map[string]any{IgnoreLabel: "yes"}
	tests := []struct {
		name string
		cond admissionregistrationv1.MatchCondition
		req  request
		want bool
	}{
		{"in an excluded namespace", excluded, obj(configMapKind, "skip-a", "x", nil), false},
		{"in another namespace", excluded, obj(configMapKind, "default", "x", nil), true},
		{"an excluded Namespace", excluded, obj(namespaceKind, "", "ex", nil), false},
		{"cluster-scoped", excluded, obj(roleKind, "", "admin", nil), true},
		{"in an exempt namespace", exempted, obj(configMapKind, "free-a", "x", nil), false},
		{"in Portcullis's namespace", exempted, obj(configMapKind, "portcullis-system", "x", nil), false},
		{"in another namespace", exempted, obj(configMapKind, "default", "x", nil), true},
		{"an exempt Namespace, unlabeled", exempted, obj(namespaceKind, "", "free-b", nil), true},
		{"an exempt Namespace with the ignore label", exempted, obj(namespaceKind, "", "free-b", ignore), false},
		{"another Namespace with the ignore label", exempted, obj(namespaceKind, "", "other", ignore), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := evalCondition(t, tt.cond, map[string]any{}, tt.req); got != tt.want {
				t.Errorf("%s: %v, want %v", tt.cond.Name, got, tt.want)
			}
		})
	}
}
