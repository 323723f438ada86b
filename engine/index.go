package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apiconstraints "github.com/open-policy-agent/frameworks/constraint/pkg/apis/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/frameworks/constraint/pkg/instrumentation"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The frameworks client stays the engine's store of templates and
// constraints: it validates them, applies parameter defaults and builds
// CRDs. Reviews, though, go through this index rather than client.Review,
// which for every review takes the client's lock, allocates a map per
// template and formats two keys per matched constraint. The index is an
// immutable snapshot replaced on every change (changes are rare, reviews
// constant), so a review reads it without a lock. It does what
// client.Review does, in the same order: templates filtered by operation
// at the webhook, constraints by enforcement point and match, one driver
// Query, enforcement actions set on the results, match errors turned into
// autorejections, and the results sorted the same way.
// TestIndexMatchesClientReview compares the two on the whole library.

// reviewIndex is what reviews read: every template kind held, in kind
// order, with its constraints.
type reviewIndex struct {
	kinds []*kindIndex
}

type kindIndex struct {
	kind string
	// engine evaluates the kind: EngineRego or EngineCEL.
	engine string
	// operations are the template's target operations; empty means all.
	operations []string
	// constraints are in name order.
	constraints []*indexedConstraint
}

// indexedConstraint is a constraint as the client holds it (parameter
// defaults applied, no status), with its matcher and actions.
type indexedConstraint struct {
	u            *unstructured.Unstructured
	matcher      *matcher
	action       string
	actionsForEP map[string][]string
}

// loadIndex returns the current snapshot.
func (e *Engine) loadIndex() *reviewIndex {
	if ix := e.index.Load(); ix != nil {
		return ix
	}
	return &reviewIndex{}
}

// updateKind replaces (or, with f returning nil, removes) one kind in a new
// snapshot. Callers hold e.mu.
func (e *Engine) updateKind(kind string, f func(old *kindIndex) *kindIndex) {
	old := e.loadIndex()
	next := &reviewIndex{kinds: make([]*kindIndex, 0, len(old.kinds)+1)}
	var current *kindIndex
	for _, k := range old.kinds {
		if k.kind == kind {
			current = k
			continue
		}
		next.kinds = append(next.kinds, k)
	}
	if k := f(current); k != nil {
		next.kinds = append(next.kinds, k)
		slices.SortFunc(next.kinds, func(a, b *kindIndex) int { return strings.Compare(a.kind, b.kind) })
	}
	e.index.Store(next)
}

// indexTemplate adds or updates a template's kind, keeping its constraints.
func (e *Engine) indexTemplate(ct *templates.ConstraintTemplate, engine string) {
	var ops []string
	if len(ct.Spec.Targets) == 1 {
		for _, op := range ct.Spec.Targets[0].Operations {
			ops = append(ops, string(op))
		}
	}
	e.updateKind(ct.Spec.CRD.Spec.Names.Kind, func(old *kindIndex) *kindIndex {
		k := &kindIndex{kind: ct.Spec.CRD.Spec.Names.Kind, engine: engine, operations: ops}
		if old != nil {
			k.constraints = old.constraints
		}
		return k
	})
}

// indexConstraint adds or replaces a constraint, as the client stored it.
func (e *Engine) indexConstraint(stored *unstructured.Unstructured) error {
	m, err := e.target.ToMatcher(stored)
	if err != nil {
		return err
	}
	action, err := apiconstraints.GetEnforcementAction(stored)
	if err != nil {
		return err
	}
	forEP := map[string][]string{}
	if apiconstraints.IsEnforcementActionScoped(action) {
		if forEP, err = apiconstraints.GetEnforcementActionsForEP(stored, e.eps); err != nil {
			return err
		}
	}
	ic := &indexedConstraint{
		u:            stored,
		matcher:      m.(*matcher),
		action:       action,
		actionsForEP: forEP,
	}
	e.updateKind(stored.GetKind(), func(old *kindIndex) *kindIndex {
		if old == nil {
			return nil // the template is gone
		}
		k := &kindIndex{kind: old.kind, engine: old.engine, operations: old.operations}
		k.constraints = make([]*indexedConstraint, 0, len(old.constraints)+1)
		for _, c := range old.constraints {
			if c.u.GetName() != stored.GetName() {
				k.constraints = append(k.constraints, c)
			}
		}
		k.constraints = append(k.constraints, ic)
		slices.SortFunc(k.constraints, func(a, b *indexedConstraint) int { return strings.Compare(a.u.GetName(), b.u.GetName()) })
		return k
	})
	return nil
}

// unindexConstraint removes a constraint.
func (e *Engine) unindexConstraint(kind, name string) {
	e.updateKind(kind, func(old *kindIndex) *kindIndex {
		if old == nil {
			return nil
		}
		k := &kindIndex{kind: old.kind, engine: old.engine, operations: old.operations}
		for _, c := range old.constraints {
			if c.u.GetName() != name {
				k.constraints = append(k.constraints, c)
			}
		}
		return k
	})
}

// unindexTemplate removes a kind and its constraints.
func (e *Engine) unindexTemplate(kind string) {
	e.updateKind(kind, func(*kindIndex) *kindIndex { return nil })
}

// reviewIndexed reviews r at the enforcement point ep, as client.Review
// would with reviews.EnforcementPoint(ep) and opts.
func (e *Engine) reviewIndexed(ctx context.Context, r *review, ep string, opts []reviews.ReviewOpt) (*types.Responses, error) {
	if ep == "" {
		ep = apiconstraints.AllEnforcementPoints
	}
	var eps []string
	for _, p := range e.eps {
		if ep == apiconstraints.AllEnforcementPoints || ep == p {
			eps = append(eps, p)
		}
	}
	if eps == nil {
		return nil, fmt.Errorf("%w, supported enforcement points: %v", client.ErrUnsupportedEnforcementPoints, e.eps)
	}
	type actions struct {
		action string
		scoped []string
	}
	var (
		// matched are the constraints to query, by engine.
		matched    [2][]*unstructured.Unstructured
		actionsOf  map[*unstructured.Unstructured]actions
		rejections []*types.Result
	)
	op := string(r.Operation)
	for _, k := range e.loadIndex().kinds {
		if ep == apiconstraints.WebhookEnforcementPoint && len(k.operations) > 0 &&
			!slices.Contains(k.operations, op) && !slices.Contains(k.operations, "*") {
			continue
		}
		slot := 0
		if k.engine == EngineCEL {
			slot = 1
		}
		for _, c := range k.constraints {
			var scoped []string
			if apiconstraints.IsEnforcementActionScoped(c.action) {
				for _, p := range eps {
					for _, a := range c.actionsForEP[p] {
						if !slices.Contains(scoped, a) {
							scoped = append(scoped, a)
						}
					}
				}
				if len(scoped) == 0 {
					continue
				}
			}
			ok, err := c.matcher.Match(r)
			switch {
			case err != nil:
				rejections = append(rejections, &types.Result{
					Msg:                      fmt.Errorf("%w: %w", clienterrors.ErrAutoreject, err).Error(),
					Constraint:               c.u,
					EnforcementAction:        c.action,
					ScopedEnforcementActions: scoped,
				})
			case ok:
				matched[slot] = append(matched[slot], c.u)
				if r.listMatched {
					r.matched = append(r.matched, c.u)
				}
				if actionsOf == nil {
					actionsOf = make(map[*unstructured.Unstructured]actions, 32)
				}
				actionsOf[c.u] = actions{action: c.action, scoped: scoped}
			}
		}
	}

	resp := &types.Response{Target: TargetName}
	var stats []*instrumentation.StatsEntry
	for i, d := range []drivers.Driver{e.driver, e.cel} {
		if len(matched[i]) == 0 {
			continue
		}
		qr, err := d.Query(ctx, TargetName, matched[i], r, opts...)
		if err != nil {
			if d == e.driver {
				return nil, err
			}
			return nil, fmt.Errorf("%s: %w", d.Name(), err)
		}
		if qr == nil {
			continue
		}
		resp.Results = append(resp.Results, qr.Results...)
		stats = append(stats, qr.StatsEntries...)
		if qr.Trace != nil {
			t := fmt.Sprintf("DRIVER %s:\n\n%s\n\n", d.Name(), *qr.Trace)
			if resp.Trace != nil {
				t = *resp.Trace + t
			}
			resp.Trace = &t
		}
	}
	// The driver's results carry the constraints passed to it.
	for _, res := range resp.Results {
		if a, ok := actionsOf[res.Constraint]; ok {
			res.EnforcementAction = a.action
			if a.scoped != nil {
				res.ScopedEnforcementActions = a.scoped
			}
		}
	}
	resp.Results = append(resp.Results, rejections...)
	resp.Sort()
	out := types.NewResponses()
	out.ByTarget[TargetName] = resp
	out.Handled[TargetName] = true
	// The frameworks client labels the drivers' stats with the target.
	for _, st := range stats {
		st.Labels = append(st.Labels, &instrumentation.Label{Name: "target", Value: TargetName})
	}
	out.StatsEntries = stats
	return out, nil
}
