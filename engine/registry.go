package engine

import (
	"slices"
	"strings"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The registry is the one record of what the engine holds: every template
// with the engine that runs it (whose driver holds its compiled program)
// and its constraint CRD, and every constraint with its matcher and
// enforcement actions. Reviews, the webhook, the audit and the CLI all
// read it. It is an immutable snapshot, replaced on every change under
// Engine.mu (changes are rare, reviews constant), so a review reads it
// without a lock.

// registry is one snapshot: the templates held, in kind order.
type registry struct {
	templates []*heldTemplate
}

// heldTemplate is a template as the engine holds it.
type heldTemplate struct {
	kind string
	// engine evaluates the template: EngineRego or EngineCEL; its driver
	// holds the compiled program.
	engine string
	// operations are the template's target operations; empty means all.
	operations []string
	// template is the template added, without status.
	template *templates.ConstraintTemplate
	// crd is the constraint CRD built from it, which constraints are
	// validated against, and structural its schema, which applies their
	// defaults.
	crd        *apiextensions.CustomResourceDefinition
	structural *structuralschema.Structural
	// constraints are in name order.
	constraints []*heldConstraint
}

// heldConstraint is a constraint as the engine holds it (parameter
// defaults applied, no status), with its matcher and actions.
type heldConstraint struct {
	u            *unstructured.Unstructured
	matcher      *matcher
	action       string
	actionsForEP map[string][]string
}

// loadRegistry returns the current snapshot.
func (e *Engine) loadRegistry() *registry {
	if r := e.reg.Load(); r != nil {
		return r
	}
	return &registry{}
}

// template returns the template held for a kind; kinds are matched as
// template names are, whatever their case, as the frameworks client does.
func (r *registry) template(kind string) *heldTemplate {
	for _, t := range r.templates {
		if strings.EqualFold(t.kind, kind) {
			return t
		}
	}
	return nil
}

// constraint returns a constraint held by a template, or nil.
func (t *heldTemplate) constraint(name string) *heldConstraint {
	for _, c := range t.constraints {
		if c.u.GetName() == name {
			return c
		}
	}
	return nil
}

// update replaces (or, with f returning nil, removes) the template of a
// kind in a new snapshot. Callers hold e.mu.
func (e *Engine) update(kind string, f func(old *heldTemplate) *heldTemplate) {
	old := e.loadRegistry()
	next := &registry{templates: make([]*heldTemplate, 0, len(old.templates)+1)}
	var current *heldTemplate
	for _, t := range old.templates {
		if strings.EqualFold(t.kind, kind) {
			current = t
			continue
		}
		next.templates = append(next.templates, t)
	}
	if t := f(current); t != nil {
		next.templates = append(next.templates, t)
		slices.SortFunc(next.templates, func(a, b *heldTemplate) int { return strings.Compare(a.kind, b.kind) })
	}
	e.reg.Store(next)
}

// withConstraints returns a copy of t whose constraints are cs, sorted.
func (t *heldTemplate) withConstraints(cs []*heldConstraint) *heldTemplate {
	n := *t
	slices.SortFunc(cs, func(a, b *heldConstraint) int { return strings.Compare(a.u.GetName(), b.u.GetName()) })
	n.constraints = cs
	return &n
}

// putConstraint adds or replaces a constraint of its template's kind.
func (e *Engine) putConstraint(c *heldConstraint) {
	e.update(c.u.GetKind(), func(old *heldTemplate) *heldTemplate {
		if old == nil {
			return nil // the template is gone
		}
		cs := make([]*heldConstraint, 0, len(old.constraints)+1)
		for _, o := range old.constraints {
			if o.u.GetName() != c.u.GetName() {
				cs = append(cs, o)
			}
		}
		return old.withConstraints(append(cs, c))
	})
}

// dropConstraint removes a constraint.
func (e *Engine) dropConstraint(kind, name string) {
	e.update(kind, func(old *heldTemplate) *heldTemplate {
		if old == nil {
			return nil
		}
		cs := make([]*heldConstraint, 0, len(old.constraints))
		for _, o := range old.constraints {
			if o.u.GetName() != name {
				cs = append(cs, o)
			}
		}
		return old.withConstraints(cs)
	})
}
