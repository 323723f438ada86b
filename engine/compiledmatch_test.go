package engine_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine"
)

func pod(ns, name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Pod")
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

// TestCompiledMatch checks the exported match that mutators use: the
// same criteria, the namespace from the object and the Namespace given.
func TestCompiledMatch(t *testing.T) {
	prod := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"env": "prod"}}}
	for _, tc := range []struct {
		name   string
		match  engine.Match
		obj    *unstructured.Unstructured
		ns     *corev1.Namespace
		source string
		want   bool
		err    string
	}{
		{name: "empty", obj: pod("prod", "a", nil), want: true},
		{name: "kind", match: engine.Match{Kinds: []engine.MatchKinds{{APIGroups: []string{""}, Kinds: []string{"Pod"}}}}, obj: pod("prod", "a", nil), want: true},
		{name: "other kind", match: engine.Match{Kinds: []engine.MatchKinds{{APIGroups: []string{"*"}, Kinds: []string{"Deployment"}}}}, obj: pod("prod", "a", nil)},
		{name: "excluded", match: engine.Match{ExcludedNamespaces: []engine.Wildcard{"pr*"}}, obj: pod("prod", "a", nil)},
		{name: "namespaced scope", match: engine.Match{Scope: "Namespaced"}, obj: pod("prod", "a", nil), want: true},
		{name: "cluster scope", match: engine.Match{Scope: "Cluster"}, obj: pod("prod", "a", nil)},
		{name: "namespace selector", match: engine.Match{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}, obj: pod("prod", "a", nil), ns: prod, want: true},
		{name: "namespace selector unknown", match: engine.Match{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}, obj: pod("prod", "a", nil), err: `Namespace "prod"`},
		{name: "name glob", match: engine.Match{Name: "nginx-*"}, obj: pod("prod", "nginx-1", nil), want: true},
		{name: "labels", match: engine.Match{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}}, obj: pod("prod", "a", map[string]string{"app": "y"})},
		{name: "generated only", match: engine.Match{Source: engine.SourceGenerated}, obj: pod("prod", "a", nil), source: engine.SourceOriginal},
		{name: "generated", match: engine.Match{Source: engine.SourceGenerated}, obj: pod("prod", "a", nil), source: engine.SourceGenerated, want: true},
	} {
		m, err := engine.CompileMatch(tc.match)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := m.Matches(tc.obj, tc.ns, tc.source)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: Matches = %t, %v, want %t", tc.name, got, err, tc.want)
		}
	}
	if _, err := engine.CompileMatch(engine.Match{Name: "a*b"}); err == nil || !strings.Contains(err.Error(), "spec.match.name") {
		t.Errorf("a bad wildcard: %v, want an error naming spec.match.name", err)
	}
}
