package datasync

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
)

func TestExclusions(t *testing.T) {
	sync, audit, webhook := configv1alpha1.ProcessSync, configv1alpha1.ProcessAudit, configv1alpha1.ProcessWebhook
	ex := NewExclusions([]configv1alpha1.MatchEntry{
		{ExcludedNamespaces: []configv1alpha1.Wildcard{"kube-*", "team-a"}, Processes: []configv1alpha1.Process{sync}},
		{ExcludedNamespaces: []configv1alpha1.Wildcard{"*-system"}, Processes: []configv1alpha1.Process{configv1alpha1.ProcessAll}},
		{ExcludedNamespaces: []configv1alpha1.Wildcard{"audit-only"}, Processes: []configv1alpha1.Process{audit}},
		{ExcludedNamespaces: []configv1alpha1.Wildcard{"nobody"}}, // no processes: excludes nothing
	})
	tests := []struct {
		process   configv1alpha1.Process
		namespace string
		want      bool
	}{
		{sync, "kube-public", true},
		{sync, "team-a", true},
		{sync, "team-ab", false},
		{sync, "portcullis-system", true},
		{webhook, "portcullis-system", true},
		{webhook, "kube-public", false},
		{audit, "audit-only", true},
		{sync, "audit-only", false},
		{sync, "nobody", false},
		{sync, "", false},
	}
	for _, tc := range tests {
		if got := ex.Excludes(tc.process, tc.namespace); got != tc.want {
			t.Errorf("Excludes(%s, %q) = %v, want %v", tc.process, tc.namespace, got, tc.want)
		}
	}
	same := NewExclusions([]configv1alpha1.MatchEntry{
		{ExcludedNamespaces: []configv1alpha1.Wildcard{"team-a", "kube-*", "team-a"}, Processes: []configv1alpha1.Process{sync}},
		{ExcludedNamespaces: []configv1alpha1.Wildcard{"*-system"}, Processes: []configv1alpha1.Process{configv1alpha1.ProcessAll}},
	})
	if !ex.Equal(same, sync) {
		t.Errorf("Equal(%v, %v) for sync = false, want true (order and duplicates do not matter)", ex, same)
	}
	if ex.Equal(Exclusions{}, sync) {
		t.Errorf("Equal with no exclusions = true, want false")
	}
	if (Exclusions{}).Excludes(sync, "kube-system") {
		t.Errorf("the zero Exclusions exclude kube-system")
	}
}

func TestTracesLookup(t *testing.T) {
	pod := schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	tr := &Traces{}
	if trace, _ := tr.Lookup("alice", pod); trace {
		t.Fatalf("traced before any rule")
	}
	tr.set([]configv1alpha1.Trace{
		{User: "alice", Kind: configv1alpha1.GVK{Version: "v1", Kind: "Pod"}},
		{User: "bob", Kind: configv1alpha1.GVK{Group: "apps", Version: "v1", Kind: "Deployment"}, Dump: configv1alpha1.DumpAll},
		{User: "carol"}, // no kind: matches nothing
	})
	tests := []struct {
		user        string
		gvk         schema.GroupVersionKind
		trace, dump bool
	}{
		{"alice", pod, true, false},
		{"alice", schema.GroupVersionKind{Version: "v1", Kind: "Service"}, false, false},
		{"bob", schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, true, true},
		{"bob", pod, false, false},
		{"carol", pod, false, false},
		{"", pod, false, false},
	}
	for _, tc := range tests {
		trace, dump := tr.Lookup(tc.user, tc.gvk)
		if trace != tc.trace || dump != tc.dump {
			t.Errorf("Lookup(%q, %v) = %v, %v, want %v, %v", tc.user, tc.gvk, trace, dump, tc.trace, tc.dump)
		}
	}
	var none *Traces
	if trace, dump := none.Lookup("alice", pod); trace || dump {
		t.Errorf("nil Traces traced")
	}
}

func TestStripObject(t *testing.T) {
	obj := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{
				"name":          "x",
				"managedFields": []any{map[string]any{"manager": "kubectl"}},
				"annotations":   map[string]any{LastAppliedAnnotation: "{}", "team": "a"},
			},
		}}
	}
	u := obj()
	if _, err := transformFunc(false)(u); err != nil {
		t.Fatal(err)
	}
	if u.GetManagedFields() != nil || u.GetAnnotations()[LastAppliedAnnotation] != "" || u.GetAnnotations()["team"] != "a" {
		t.Errorf("stripped: managedFields %v, annotations %v; want none and {team: a}", u.GetManagedFields(), u.GetAnnotations())
	}
	u = obj()
	unstructured.RemoveNestedField(u.Object, "metadata", "annotations", "team")
	StripObject(u)
	if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "metadata", "annotations"); found {
		t.Errorf("annotations left empty, want them dropped")
	}
	StripObject(&unstructured.Unstructured{Object: map[string]any{}}) // no metadata: no panic
	if transformFunc(true) != nil {
		t.Errorf("--sync-keep-managed-fields: want no transform")
	}
}
