package expansion

import (
	"fmt"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Unjudged returns a warning for each usable template whose generated kind
// no constraint given matches (by spec.match.kinds) and no template
// expands further: its resultants are built and reviewed, but nothing can
// find fault with them, which is most often a mistake in the template's
// generatedGVK or the constraints' kinds. Gatekeeper says nothing; the
// templates still work.
func (s *System) Unjudged(constraints []*unstructured.Unstructured) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for name, t := range s.templates {
		if _, inCycle := s.conflicts[name]; inCycle {
			continue
		}
		gvk := t.GeneratedGVK
		if len(s.byGVK[gvk]) > 0 || slices.ContainsFunc(constraints, func(c *unstructured.Unstructured) bool { return matchesKind(c, gvk) }) {
			continue
		}
		out = append(out, fmt.Sprintf("ExpansionTemplate %q: spec.generatedGVK %s is matched by no constraint (spec.match.kinds) and expanded by no ExpansionTemplate: its resultants are never judged",
			name, gvkString(gvk)))
	}
	sort.Strings(out)
	return out
}

// matchesKind reports whether a constraint's spec.match.kinds can select
// gvk: no kinds, or an entry whose apiGroups and kinds are empty, "*" or
// name it.
func matchesKind(c *unstructured.Unstructured, gvk schema.GroupVersionKind) bool {
	kinds, found, err := unstructured.NestedSlice(c.Object, "spec", "match", "kinds")
	if err != nil || !found || len(kinds) == 0 {
		return true
	}
	for _, k := range kinds {
		m, ok := k.(map[string]any)
		if !ok {
			continue
		}
		if listAllows(m["apiGroups"], gvk.Group) && listAllows(m["kinds"], gvk.Kind) {
			return true
		}
	}
	return false
}

func listAllows(v any, s string) bool {
	l, _ := v.([]any)
	if len(l) == 0 {
		return true
	}
	for _, e := range l {
		if e == "*" || e == s {
			return true
		}
	}
	return false
}

// gvkString is apiVersion and kind, as in a manifest: "v1 Pod", "batch/v1 Job".
func gvkString(gvk schema.GroupVersionKind) string {
	return gvk.GroupVersion().String() + " " + gvk.Kind
}
