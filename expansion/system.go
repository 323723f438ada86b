package expansion

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/engine"
)

// MaxDepth bounds recursive expansion (a CronJob expands into a Job, which
// expands into a Pod), as Gatekeeper's does. Cycles are refused when
// templates are added, so it is a safeguard only.
const MaxDepth = 30

// ErrCycle is returned for a template that forms a cycle with others (A
// generates what B expands, and B what A expands). Gatekeeper's status
// message is the error's text.
var ErrCycle = errors.New("template forms expansion cycle")

// Mutator applies mutators to a resultant before it is judged, as
// Gatekeeper's mutation system does to expanded resources: source is
// engine.SourceGenerated, so that only mutators whose match.source allows
// generated resources apply. It changes obj in place and reports whether
// it changed anything. It must be safe to call concurrently.
type Mutator interface {
	Mutate(ctx context.Context, obj *unstructured.Unstructured, ns *corev1.Namespace, source string) (bool, error)
}

// Resultant is one resource an object expands into.
type Resultant struct {
	Object *unstructured.Unstructured
	// TemplateName is the ExpansionTemplate that generated it.
	TemplateName string
	// EnforcementAction is the template's override of the enforcement
	// action of the resultant's violations; empty keeps the constraints'.
	EnforcementAction string
}

// System holds the ExpansionTemplates and expands objects with them. Its
// methods are safe to call concurrently; Expand does not block others.
type System struct {
	mutator Mutator

	mu        sync.RWMutex
	templates map[string]*Template
	// conflicts are the templates in a cycle, with the templates of their
	// cycle: kept, but not used.
	conflicts map[string][]string
	// byGVK are the usable templates that expand each kind, by name.
	byGVK map[schema.GroupVersionKind][]*Template
}

// NewSystem returns an empty System. mutator, if not nil, is applied to
// every resultant (see Mutator); nil applies none.
func NewSystem(mutator Mutator) *System {
	return &System{
		mutator:   mutator,
		templates: map[string]*Template{},
		conflicts: map[string][]string{},
		byGVK:     map[schema.GroupVersionKind][]*Template{},
	}
}

// Upsert adds or replaces a template. An invalid template is refused and
// the version held before, if any, is kept, as in Gatekeeper. A template
// that forms a cycle is kept but not used, nor are the others of its
// cycle, until the cycle is broken; Upsert then returns ErrCycle.
func (s *System) Upsert(t *Template) error {
	c := *t
	if err := c.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.templates[c.Name] = &c
	s.rebuild()
	if cycle, ok := s.conflicts[c.Name]; ok {
		return fmt.Errorf("%w: %s", ErrCycle, strings.Join(cycle, ", "))
	}
	return nil
}

// Remove removes the template of that name; an unknown name is no error.
func (s *System) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.templates[name]; !ok {
		return
	}
	delete(s.templates, name)
	s.rebuild()
}

// Conflicts returns the names of the templates in a cycle, sorted.
func (s *System) Conflicts() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.conflicts))
	for n := range s.conflicts {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Len is the number of templates held, in a cycle or not.
func (s *System) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.templates)
}

// rebuild recomputes the cycles and the kinds' templates. Templates are
// few, and change rarely: recomputing beats keeping a graph up to date.
func (s *System) rebuild() {
	s.conflicts = findCycles(s.templates)
	s.byGVK = map[schema.GroupVersionKind][]*Template{}
	for name, t := range s.templates {
		if _, ok := s.conflicts[name]; ok {
			continue
		}
		seen := map[schema.GroupVersionKind]bool{}
		for _, gvk := range t.applyToGVKs() {
			if !seen[gvk] {
				seen[gvk] = true
				s.byGVK[gvk] = append(s.byGVK[gvk], t)
			}
		}
	}
	for _, ts := range s.byGVK {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	}
}

// Expands reports whether some usable template expands objects of kind
// gvk: when it does not, Expand returns nothing.
func (s *System) Expands(gvk schema.GroupVersionKind) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byGVK[gvk]) > 0
}

// Expand returns the resources obj expands into, recursively, mutated by
// the System's Mutator: for each template that applies to obj's kind, by
// template name, the resultants of its resultant come before it, as in
// Gatekeeper. ns is obj's Namespace when known: resultants are put in it,
// otherwise in obj's namespace. An object no template applies to expands
// into nothing. obj is not changed; it must hold JSON values only, as
// decoded objects do.
func (s *System) Expand(ctx context.Context, obj *unstructured.Unstructured, ns *corev1.Namespace) ([]Resultant, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.byGVK) == 0 {
		return nil, nil
	}
	var out []Resultant
	if err := s.expand(ctx, obj, ns, 0, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *System) expand(ctx context.Context, obj *unstructured.Unstructured, ns *corev1.Namespace, depth int, out *[]Resultant) error {
	ts := s.byGVK[obj.GroupVersionKind()]
	if len(ts) == 0 {
		return nil
	}
	if depth >= MaxDepth {
		return fmt.Errorf("expanding %s: maximum recursion depth of %d reached", describe(obj), MaxDepth)
	}
	var nsName *string
	if ns != nil {
		nsName = &ns.Name
	}
	level := make([]Resultant, 0, len(ts))
	for _, t := range ts {
		r, err := t.expand(obj, nsName)
		if err != nil {
			return err
		}
		if s.mutator != nil {
			if _, err := s.mutator.Mutate(ctx, r, ns, engine.SourceGenerated); err != nil {
				return fmt.Errorf("mutating %s, expanded from %s by ExpansionTemplate %q: %w", describe(r), describe(obj), t.Name, err)
			}
		}
		level = append(level, Resultant{Object: r, TemplateName: t.Name, EnforcementAction: t.EnforcementAction})
	}
	for _, r := range level {
		if err := s.expand(ctx, r.Object, ns, depth+1, out); err != nil {
			return err
		}
	}
	*out = append(*out, level...)
	return nil
}
