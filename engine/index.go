package engine

import (
	"context"
	"fmt"
	"slices"

	apiconstraints "github.com/open-policy-agent/frameworks/constraint/pkg/apis/constraints"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/instrumentation"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// A review reads the registry (see registry.go) and does what the
// frameworks client's Review does, in the same order: templates filtered
// by operation at the webhook, constraints by enforcement point and match,
// one Query per driver, enforcement actions set on the results, match
// errors turned into autorejections, and the results sorted the same way.
// TestIndexMatchesClientReview compares the two on the whole library.

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
		return nil, fmt.Errorf("%w, supported enforcement points: %v", ErrUnsupportedEnforcementPoint, e.eps)
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
	for _, k := range e.loadRegistry().templates {
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
