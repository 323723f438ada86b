package engine

import (
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TargetName is the frameworks target that judges Kubernetes admission
// requests and stored objects, as in Gatekeeper.
const TargetName = "admission.k8s.gatekeeper.sh"

// ErrReviewType is returned for review inputs the target does not know.
var ErrReviewType = errors.New("unsupported review type")

// target is what the engine knows of admission.k8s.gatekeeper.sh: the
// match schema of its constraints, their matchers, and the Namespaces
// synced, which the matchers read.
type target struct {
	namespaces *namespaceCache
}

func newTarget() *target { return &target{namespaces: &namespaceCache{}} }

// GetName is the target's name.
func (t *target) GetName() string { return TargetName }

// MatchSchema is the schema of spec.match in constraint CRDs.
func (t *target) MatchSchema() apiextensions.JSONSchemaProps { return matchSchema() }

// inventoryKey maps an object to its data.inventory path:
// cluster/<gv>/<kind>/<name> or namespace/<ns>/<gv>/<kind>/<name>.
func inventoryKey(o *unstructured.Unstructured) ([]string, error) {
	gvk := o.GroupVersionKind()
	if gvk.Version == "" || gvk.Kind == "" {
		return nil, fmt.Errorf("%w: inventory object %q has no apiVersion or kind", ErrBadObject, o.GetName())
	}
	if o.GetName() == "" {
		return nil, fmt.Errorf("%w: inventory %s has no metadata.name", ErrBadObject, gvk.Kind)
	}
	gv := gvk.GroupVersion().String()
	if ns := o.GetNamespace(); ns != "" {
		return []string{"namespace", ns, gv, gvk.Kind, o.GetName()}, nil
	}
	return []string{"cluster", gv, gvk.Kind, o.GetName()}, nil
}

// ValidateConstraint checks what the CRD schema cannot: the selectors parse
// and the wildcards are well formed.
func (t *target) ValidateConstraint(u *unstructured.Unstructured) error {
	_, err := parseMatch(u)
	return err
}

// ToMatcher compiles a constraint's spec.match.
func (t *target) ToMatcher(u *unstructured.Unstructured) (*matcher, error) {
	m, err := parseMatch(u)
	if err != nil {
		return nil, err
	}
	return &matcher{match: m, namespaces: t.namespaces}, nil
}

// matcher evaluates one constraint's spec.match against a review.
type matcher struct {
	match      *compiledMatch
	namespaces *namespaceCache
}

func (m *matcher) Match(rv any) (bool, error) {
	if m.match == nil {
		return true, nil
	}
	r, ok := rv.(*review)
	if !ok {
		return false, fmt.Errorf("%w: %T", ErrReviewType, rv)
	}
	ns := r.namespace
	if ns == nil && r.Namespace != "" {
		ns = m.namespaces.get(r.Namespace)
	}
	t := matchTarget{nsName: r.Namespace, source: r.source, process: r.process}
	if ns != nil {
		t.nsKnown = true
		t.nsLabels = ns.Labels
		if t.nsName == "" {
			t.nsName = ns.Name
		}
	}
	checked := 0
	for _, obj := range []*unstructured.Unstructured{r.obj, r.oldObj} {
		if obj == nil {
			continue
		}
		checked++
		t.obj = obj
		ok, err := m.match.matches(&t)
		if err != nil {
			return false, fmt.Errorf("%s %q: %w", obj.GetKind(), obj.GetName(), err)
		}
		if ok {
			return true, nil
		}
	}
	if checked == 0 {
		return false, ErrNoObject
	}
	return false, nil
}

// namespaceCache holds Namespaces added as inventory, so that
// namespaceSelector works for objects whose Namespace was synced.
type namespaceCache struct {
	mu sync.RWMutex
	m  map[string]*corev1.Namespace
}

func (c *namespaceCache) Add(key []string, obj any) error {
	if len(key) != 4 || key[0] != "cluster" || key[1] != "v1" || key[2] != "Namespace" {
		return nil
	}
	m, ok := obj.(map[string]any)
	if !ok {
		return nil
	}
	ns, err := NamespaceFromUnstructured(&unstructured.Unstructured{Object: m})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*corev1.Namespace{}
	}
	c.m[key[3]] = ns
	return nil
}

func (c *namespaceCache) Remove(key []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(key) == 0 {
		c.m = nil
		return
	}
	if len(key) == 4 && key[0] == "cluster" && key[1] == "v1" && key[2] == "Namespace" {
		delete(c.m, key[3])
	}
}

func (c *namespaceCache) get(name string) *corev1.Namespace {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[name]
}
