package audit

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

func res(group, version, name, kind string) resource {
	return resource{gvr: schema.GroupVersionResource{Group: group, Version: version, Resource: name}, kind: kind, namespaced: true}
}

var (
	pods        = res("", "v1", "pods", "Pod")
	configmaps  = res("", "v1", "configmaps", "ConfigMap")
	deployments = res("apps", "v1", "deployments", "Deployment")
	ingresses   = res("networking.k8s.io", "v1", "ingresses", "Ingress")
	allRes      = []resource{configmaps, pods, deployments, ingresses}
)

func kindsOf(t *testing.T, doc string) kindMatcher {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	m, err := parseKinds(u)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSelectResources(t *testing.T) {
	podsOnly := kindsOf(t, `spec: {match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}}`)
	appsAny := kindsOf(t, `spec: {match: {kinds: [{apiGroups: [apps], kinds: ["*"]}]}}`)
	ingressAnyGroup := kindsOf(t, `spec: {match: {kinds: [{kinds: [Ingress]}]}}`)
	noKinds := kindsOf(t, `spec: {match: {namespaces: [a]}}`)
	noMatch := kindsOf(t, `spec: {}`)
	wildcard := kindsOf(t, `spec: {match: {kinds: [{apiGroups: ["*"], kinds: ["*"]}]}}`)

	for name, tc := range map[string]struct {
		matchers []kindMatcher
		only     bool
		want     []resource
	}{
		"everything without the flag":     {[]kindMatcher{podsOnly}, false, allRes},
		"named kinds":                     {[]kindMatcher{podsOnly, appsAny}, true, []resource{pods, deployments}},
		"kind in any group":               {[]kindMatcher{ingressAnyGroup}, true, []resource{ingresses}},
		"a constraint without kinds: all": {[]kindMatcher{podsOnly, noKinds}, true, allRes},
		"a constraint without match: all": {[]kindMatcher{noMatch}, true, allRes},
		"a wildcard constraint: all":      {[]kindMatcher{podsOnly, wildcard}, true, allRes},
		"no constraints: nothing to list": {nil, true, nil},
	} {
		t.Run(name, func(t *testing.T) {
			got := selectResources(allRes, tc.matchers, tc.only)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestFailuresAffect(t *testing.T) {
	podsOnly := kindMatcher{{APIGroups: []string{""}, Kinds: []string{"Pod"}}}
	apps := kindMatcher{{APIGroups: []string{"apps"}, Kinds: []string{"Deployment"}}}
	all := kindMatcher(nil)

	f := newFailures()
	if f.affects(all) {
		t.Error("no failures affect a constraint")
	}
	f.kinds[schema.GroupKind{Kind: "Pod"}] = true
	if !f.affects(podsOnly) || !f.affects(all) || f.affects(apps) {
		t.Error("a failed Pod list affects the Pod and match-all constraints only")
	}
	if !f.covers(schema.GroupKind{Kind: "Pod"}) || f.covers(schema.GroupKind{Group: "apps", Kind: "Deployment"}) {
		t.Error("covers is wrong for kinds")
	}
	g := newFailures()
	g.groups["apps"] = true
	if !g.affects(apps) || !g.affects(all) || g.affects(podsOnly) {
		t.Error("a failed group affects the constraints that can match any of its kinds")
	}
	if !g.covers(schema.GroupKind{Group: "apps", Kind: "StatefulSet"}) {
		t.Error("a failed group covers all its kinds")
	}
}
