package mutation

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Annotations --mutation-annotations adds, as Gatekeeper does.
const (
	AnnotationMutationID = "gatekeeper.sh/mutation-id"
	AnnotationMutations  = "gatekeeper.sh/mutations"
)

// finish logs a mutation of obj, and annotates work, its mutated copy,
// as the options ask.
func (s *System) finish(obj, work *unstructured.Unstructured, mutationID, source string, applied [][]*Mutator) {
	if s.opts.LogMutations {
		s.logApplied("Mutation applied", mutationID, obj, source, applied)
	}
	if !s.opts.Annotations {
		return
	}
	var names []string
	for _, it := range applied {
		for _, m := range it {
			names = append(names, m.String())
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	a := work.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationMutations] = strings.Join(names, ", ")
	a[AnnotationMutationID] = mutationID
	work.SetAnnotations(a)
}

// logApplied logs the mutators applied to obj in each iteration, with
// Gatekeeper's keys.
func (s *System) logApplied(msg, mutationID string, obj *unstructured.Unstructured, source string, applied [][]*Mutator) {
	gvk := obj.GroupVersionKind()
	name := obj.GetName()
	if name == "" {
		name = obj.GetGenerateName()
	}
	kv := []any{
		"process", "mutation", "semantic", true, "Mutation Id", mutationID, "event_type", "mutation_applied",
		"resource_group", gvk.Group, "resource_kind", gvk.Kind, "resource_api_version", gvk.Version,
		"resource_namespace", obj.GetNamespace(), "resource_name", name, "resource_labels", obj.GetLabels(),
	}
	if source != "" {
		kv = append(kv, "resource_source_type", source)
	}
	for i, it := range applied {
		if len(it) == 0 {
			continue
		}
		names := make([]string, len(it))
		for j, m := range it {
			names[j] = m.String()
		}
		kv = append(kv, fmt.Sprintf("iteration_%d", i), strings.Join(names, ", "))
	}
	s.opts.Log.Info(msg, kv...)
}
