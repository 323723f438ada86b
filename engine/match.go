package engine

import (
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Source values for Match.Source and for reviews.
const (
	SourceAll       = "All"
	SourceOriginal  = "Original"
	SourceGenerated = "Generated"
)

// Process values for Match.Processes, which scope excludedNamespaces.
const (
	ProcessAudit   = "audit"
	ProcessWebhook = "webhook"
	ProcessSync    = "sync"
	ProcessAll     = "*"
)

// ErrMatch wraps every failure to evaluate match criteria. The frameworks
// client turns it into an autoreject result for the constraint.
var ErrMatch = errors.New("unable to match constraint")

// Match is a constraint's spec.match, with Gatekeeper's field names.
type Match struct {
	Kinds              []MatchKinds          `json:"kinds,omitempty"`
	Scope              string                `json:"scope,omitempty"`
	Namespaces         []Wildcard            `json:"namespaces,omitempty"`
	ExcludedNamespaces []Wildcard            `json:"excludedNamespaces,omitempty"`
	LabelSelector      *metav1.LabelSelector `json:"labelSelector,omitempty"`
	NamespaceSelector  *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	Name               Wildcard              `json:"name,omitempty"`
	Source             string                `json:"source,omitempty"`
	Processes          []string              `json:"processes,omitempty"`
}

// MatchKinds selects objects by API group and kind; empty or "*" means all.
type MatchKinds struct {
	APIGroups []string `json:"apiGroups,omitempty"`
	Kinds     []string `json:"kinds,omitempty"`
}

// compiledMatch is a Match with its selectors parsed once, at AddConstraint.
type compiledMatch struct {
	Match
	labelSelector     labels.Selector
	namespaceSelector labels.Selector
}

// parseMatch reads spec.match from a constraint; a missing match is nil.
func parseMatch(constraint *unstructured.Unstructured) (*compiledMatch, error) {
	raw, found, err := unstructured.NestedMap(constraint.Object, "spec", "match")
	if err != nil {
		return nil, fmt.Errorf("spec.match: %w", err)
	}
	if !found {
		return nil, nil
	}
	var m Match
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &m); err != nil {
		return nil, fmt.Errorf("spec.match: %w", err)
	}
	return compileMatch(m)
}

// compileMatch parses the selectors of m and checks its wildcards; errors
// name the field under spec.match.
func compileMatch(match Match) (*compiledMatch, error) {
	m := &compiledMatch{Match: match}
	var err error
	if m.LabelSelector != nil {
		if m.labelSelector, err = metav1.LabelSelectorAsSelector(m.LabelSelector); err != nil {
			return nil, fmt.Errorf("spec.match.labelSelector: %w", err)
		}
	}
	if m.NamespaceSelector != nil {
		if m.namespaceSelector, err = metav1.LabelSelectorAsSelector(m.NamespaceSelector); err != nil {
			return nil, fmt.Errorf("spec.match.namespaceSelector: %w", err)
		}
	}
	for i, w := range m.Namespaces {
		if err := w.Validate(); err != nil {
			return nil, fmt.Errorf("spec.match.namespaces[%d]: %w", i, err)
		}
	}
	for i, w := range m.ExcludedNamespaces {
		if err := w.Validate(); err != nil {
			return nil, fmt.Errorf("spec.match.excludedNamespaces[%d]: %w", i, err)
		}
	}
	if m.Name != "" {
		if err := m.Name.Validate(); err != nil {
			return nil, fmt.Errorf("spec.match.name: %w", err)
		}
	}
	return m, nil
}

// CompiledMatch is match criteria checked and compiled once, so that
// mutators (package mutation) select objects exactly as constraints do.
type CompiledMatch struct {
	m *compiledMatch
}

// CompileMatch checks m (its selectors parse, its wildcards are well
// formed; errors name the field under spec.match) and compiles it.
func CompileMatch(m Match) (*CompiledMatch, error) {
	c, err := compileMatch(m)
	if err != nil {
		return nil, err
	}
	return &CompiledMatch{m: c}, nil
}

// Matches reports whether obj meets the criteria. ns is its Namespace, or
// the object's namespace is taken as unknown when ns is nil; source is
// SourceOriginal or SourceGenerated ("" counts as original).
func (c *CompiledMatch) Matches(obj *unstructured.Unstructured, ns *corev1.Namespace, source string) (bool, error) {
	t := matchTarget{obj: obj, nsName: obj.GetNamespace(), source: source}
	if ns != nil {
		t.nsKnown, t.nsLabels = true, ns.Labels
		if t.nsName == "" && !IsNamespace(obj) {
			t.nsName = ns.Name
		}
	}
	return c.m.matches(&t)
}

// matchTarget is what match criteria are evaluated against: one object (the
// new or the old one) with what is known of its namespace.
type matchTarget struct {
	obj      *unstructured.Unstructured
	nsName   string            // namespace the request or object names
	nsLabels map[string]string // labels of that namespace, if known
	nsKnown  bool              // whether the namespace object was found
	source   string
	process  string
}

// IsNamespace reports whether obj is a core Namespace.
func IsNamespace(obj *unstructured.Unstructured) bool {
	gvk := obj.GroupVersionKind()
	return gvk.Group == "" && gvk.Kind == "Namespace"
}

// matches ANDs the match criteria, in Gatekeeper's order and semantics.
func (m *compiledMatch) matches(t *matchTarget) (bool, error) {
	obj := t.obj
	isNS := IsNamespace(obj)
	if !m.kindsMatch(obj) {
		return false, nil
	}
	// The namespace an object is judged by: a Namespace is its own, a
	// cluster-scoped object has none.
	ns := t.nsName
	if isNS {
		ns = obj.GetName()
	}
	hasNamespace := t.nsName != "" || t.nsKnown
	switch m.Scope {
	case "Cluster":
		if !isNS && hasNamespace {
			return false, nil
		}
	case "Namespaced":
		if isNS || !hasNamespace {
			return false, nil
		}
	}
	// Without a namespace name nor a Namespace object (a cluster-scoped
	// object), namespaces and excludedNamespaces cannot disqualify; with a
	// Namespace object, even a nameless one as gator gives objects without
	// metadata.namespace, its name is judged, as in Gatekeeper.
	judged := ns != "" || isNS || t.nsKnown
	if len(m.Namespaces) > 0 && judged && !anyWildcardMatches(m.Namespaces, ns) {
		return false, nil
	}
	if len(m.ExcludedNamespaces) > 0 && judged && m.excludesProcess(t.process) &&
		anyWildcardMatches(m.ExcludedNamespaces, ns) {
		return false, nil
	}
	if m.labelSelector != nil && !m.labelSelector.Matches(labels.Set(obj.GetLabels())) {
		return false, nil
	}
	if m.namespaceSelector != nil {
		switch {
		case isNS:
			if !m.namespaceSelector.Matches(labels.Set(obj.GetLabels())) {
				return false, nil
			}
		case t.nsName == "" && !t.nsKnown:
			// Cluster-scoped objects are not filtered by namespaceSelector.
		case !t.nsKnown:
			return false, fmt.Errorf("%w: namespaceSelector needs Namespace %q, which is unknown (missing Namespace)", ErrMatch, t.nsName)
		default:
			if !m.namespaceSelector.Matches(labels.Set(t.nsLabels)) {
				return false, nil
			}
		}
	}
	if m.Name != "" && !m.nameMatches(obj) {
		return false, nil
	}
	switch m.Source {
	case "", SourceAll:
	default:
		src := t.source
		if src == "" {
			src = SourceOriginal
		}
		if src != m.Source {
			return false, nil
		}
	}
	return true, nil
}

func (m *compiledMatch) kindsMatch(obj *unstructured.Unstructured) bool {
	if len(m.Kinds) == 0 {
		return true
	}
	gvk := obj.GroupVersionKind()
	for _, k := range m.Kinds {
		if (len(k.Kinds) == 0 || contains(k.Kinds, "*") || contains(k.Kinds, gvk.Kind)) &&
			(len(k.APIGroups) == 0 || contains(k.APIGroups, "*") || contains(k.APIGroups, gvk.Group)) {
			return true
		}
	}
	return false
}

func (m *compiledMatch) nameMatches(obj *unstructured.Unstructured) bool {
	if name := obj.GetName(); name != "" {
		return m.Name.Matches(name)
	}
	// An object created with generateName has no name yet: it matches only
	// when every name the prefix can become would.
	gen := obj.GetGenerateName()
	if gen == "" {
		return false
	}
	return m.Name.MatchesGenerateName(gen)
}

// excludesProcess reports whether excludedNamespaces apply to the process.
func (m *compiledMatch) excludesProcess(process string) bool {
	if len(m.Processes) == 0 || process == "" {
		return true
	}
	for _, p := range m.Processes {
		if p == ProcessAll || p == process {
			return true
		}
	}
	return false
}

func contains(set []string, s string) bool {
	return slices.Contains(set, s)
}
