package audit

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"github.com/portcullis-dev/portcullis/engine"
)

// ConstraintGroup is the API group of every constraint kind.
const ConstraintGroup = "constraints.gatekeeper.sh"

// resource is one listable kind.
type resource struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
	// index numbers the resources of a run, for its reports.
	index int
}

func (r resource) groupKind() schema.GroupKind {
	return schema.GroupKind{Group: r.gvr.Group, Kind: r.kind}
}

// discoverResources returns every kind that can be listed, at its group's
// preferred version, without subresources, sorted. Groups whose discovery
// failed (an aggregated API that is down, for instance) are returned apart:
// the kinds they serve are unknown.
func discoverResources(d discovery.DiscoveryInterface) ([]resource, map[string]error, error) {
	lists, err := d.ServerPreferredResources()
	failedGroups := map[string]error{}
	if err != nil {
		var gdf *discovery.ErrGroupDiscoveryFailed
		if !errors.As(err, &gdf) {
			return nil, nil, fmt.Errorf("discovering API resources: %w", err)
		}
		for gv, gerr := range gdf.Groups {
			failedGroups[gv.Group] = gerr
		}
	}
	var out []resource
	seen := map[schema.GroupVersionResource]bool{}
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerb(r.Verbs, "list") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			if seen[gvr] {
				continue
			}
			seen[gvr] = true
			out = append(out, resource{gvr: gvr, kind: r.Kind, namespaced: r.Namespaced})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].gvr.String() < out[j].gvr.String() })
	return out, failedGroups, nil
}

func hasVerb(verbs []string, verb string) bool {
	return slices.Contains(verbs, verb)
}

// kindMatcher is a constraint's spec.match.kinds; nil or empty matches every
// kind.
type kindMatcher []engine.MatchKinds

// parseKinds reads spec.match.kinds from a constraint.
func parseKinds(u *unstructured.Unstructured) (kindMatcher, error) {
	raw, found, err := unstructured.NestedSlice(u.Object, "spec", "match", "kinds")
	if err != nil {
		return nil, fmt.Errorf("spec.match.kinds: %w", err)
	}
	if !found {
		return nil, nil
	}
	out := make(kindMatcher, 0, len(raw))
	for i, e := range raw {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("spec.match.kinds[%d]: not an object", i)
		}
		var mk engine.MatchKinds
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &mk); err != nil {
			return nil, fmt.Errorf("spec.match.kinds[%d]: %w", i, err)
		}
		out = append(out, mk)
	}
	return out, nil
}

// all reports whether the matcher matches every kind of every group.
func (m kindMatcher) all() bool {
	if len(m) == 0 {
		return true
	}
	for _, k := range m {
		if anyOrWild(k.APIGroups) && anyOrWild(k.Kinds) {
			return true
		}
	}
	return false
}

// matches reports whether the constraint can match objects of gk; a kind of
// "" stands for any kind of the group.
func (m kindMatcher) matches(gk schema.GroupKind) bool {
	if len(m) == 0 {
		return true
	}
	for _, k := range m {
		groupOK := anyOrWild(k.APIGroups) || contains(k.APIGroups, gk.Group)
		kindOK := anyOrWild(k.Kinds) || gk.Kind == "" || contains(k.Kinds, gk.Kind)
		if groupOK && kindOK {
			return true
		}
	}
	return false
}

func anyOrWild(s []string) bool { return len(s) == 0 || contains(s, "*") }

func contains(set []string, s string) bool {
	return slices.Contains(set, s)
}

// selectResources returns the resources to audit: all of them, or with
// matchKindOnly those some constraint can match (all of them as soon as one
// constraint names no kinds or "*").
func selectResources(all []resource, matchers []kindMatcher, matchKindOnly bool) []resource {
	if !matchKindOnly {
		return all
	}
	for _, m := range matchers {
		if m.all() {
			return all
		}
	}
	var out []resource
	for _, r := range all {
		for _, m := range matchers {
			if m.matches(r.groupKind()) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// failures are the kinds a run could not list completely: the violations
// previously found for them are kept.
type failures struct {
	kinds  map[schema.GroupKind]bool
	groups map[string]bool // groups whose discovery failed: any kind
}

func newFailures() *failures {
	return &failures{kinds: map[schema.GroupKind]bool{}, groups: map[string]bool{}}
}

func (f *failures) empty() bool { return len(f.kinds) == 0 && len(f.groups) == 0 }

// covers reports whether gk failed to list.
func (f *failures) covers(gk schema.GroupKind) bool {
	return f.kinds[gk] || f.groups[gk.Group]
}

// affects reports whether a constraint with kinds m can match a kind that
// failed to list: its results of this run are then incomplete.
func (f *failures) affects(m kindMatcher) bool {
	for gk := range f.kinds {
		if m.matches(gk) {
			return true
		}
	}
	for g := range f.groups {
		if m.matches(schema.GroupKind{Group: g}) {
			return true
		}
	}
	return false
}
