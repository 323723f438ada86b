package vap

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// BenchmarkPolicy generates the policy of a template, as each reconcile
// of a CEL template on a generating replica does before comparing it with
// the one stored.
func BenchmarkPolicy(b *testing.B) {
	ct := celTemplate(source(nil))
	in := PolicyInput{Scope: webhookScope(), Namespace: "portcullis-system", Exempt: []string{"kube-system", "portcullis-system"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Policy(ct, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBinding generates the binding of a constraint, as each
// reconcile of a constraint of a CEL template does.
func BenchmarkBinding(b *testing.B) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels",
		"metadata": map[string]any{"name": "must-have-owner"},
		"spec": map[string]any{"match": map[string]any{
			"labelSelector":     map[string]any{"matchLabels": map[string]any{"team": "a"}},
			"namespaceSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "env", "operator": "In", "values": []any{"prod"}}}},
		}},
	}}
	b.ReportAllocs()
	for b.Loop() {
		actions, err := BindingActions(u, true)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Binding(u, actions); err != nil {
			b.Fatal(err)
		}
	}
}
