package mutation

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// matches reports whether the mutator applies to obj: its applyTo names
// obj's kind for op (AssignMetadata has none and applies to every kind),
// and its match selects obj.
func (m *Mutator) matches(obj *unstructured.Unstructured, ns *corev1.Namespace, source string, op Operation) (bool, error) {
	if m.applyTo != nil {
		gvk := obj.GroupVersionKind()
		ok := false
		for i := range m.applyTo {
			if m.applyTo[i].matches(gvk, op) {
				ok = true
				break
			}
		}
		if !ok {
			return false, nil
		}
	}
	return m.match.Matches(obj, ns, source)
}

// apply applies the mutator to obj, in place.
func (m *Mutator) apply(obj *unstructured.Unstructured) (outcome, error) {
	w := walker{loc: m.loc, tester: m.tester, set: m.set, meta: objectMeta{namespace: obj.GetNamespace(), name: obj.GetName()}}
	_, o, err := w.walk(obj.Object, 0)
	return o, err
}
