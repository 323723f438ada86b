package mutation

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ExpansionMutator applies a System's mutators to the resources that
// ExpansionTemplates generate from a workload (a Deployment's Pod) before
// they are judged, as Gatekeeper's expansion does; it is the expansion
// package's Mutator. Resultants are mutated outside admission: only the
// mutators that apply to every operation apply (None), and only those
// whose match.source admits the source given (Generated, or All when
// unset).
type ExpansionMutator struct {
	system *System
	// namespace resolves the Namespace of an object given none; nil
	// leaves it unknown.
	namespace func(obj *unstructured.Unstructured) *corev1.Namespace
}

// ForExpansion returns the ExpansionMutator of s.
func (s *System) ForExpansion() *ExpansionMutator { return &ExpansionMutator{system: s} }

// ForExpansion returns an ExpansionMutator of the mutators added, which
// reads the Namespaces added as Mutate does when it is given no Namespace.
func (o *Offline) ForExpansion() *ExpansionMutator {
	return &ExpansionMutator{system: o.system, namespace: func(obj *unstructured.Unstructured) *corev1.Namespace {
		return o.namespaceOf(obj, obj.GetNamespace())
	}}
}

// Mutate applies the mutators to obj, in place, and reports whether it
// changed; ns is obj's Namespace, nil when unknown. On an error obj is
// left as it was.
func (e *ExpansionMutator) Mutate(ctx context.Context, obj *unstructured.Unstructured, ns *corev1.Namespace, source string) (bool, error) {
	if ns == nil && e.namespace != nil {
		ns = e.namespace(obj)
	}
	return e.system.Mutate(ctx, obj, ns, source, None)
}
