package audit

import (
	"context"
	"errors"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/klog/v2"

	"github.com/portcullis-dev/portcullis/audit/policyreport"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/violations"
)

// worker is one reviewing goroutine's tallies, merged at the end of the
// run so that workers share nothing while they review.
type worker struct {
	results      *results
	reports      *policyreport.Buffer // nil without reports
	reviewed     int
	exempt       int
	reviewErrors int
}

// review lists resources one page at a time and reviews each page with
// Options.Workers goroutines as it arrives. What is held at once is about
// two pages of JSON (the one being reviewed and the next, fetched
// meanwhile) and one decoded object per worker.
func (r *run) review(ctx context.Context, resources []resource) (*results, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := r.a.opts.workers()
	buffer := int(r.a.opts.ChunkSize)
	if buffer <= 0 || buffer > 1000 {
		buffer = 1000
	}
	items := make(chan item, buffer)
	workers := make([]*worker, n)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{results: newResults(r.a.opts.ViolationsLimit)}
		if r.reports != nil {
			w.reports = r.reports.collector.NewBuffer()
		}
		workers[i] = w
		wg.Go(func() {
			r.work(ctx, items, w)
		})
	}
	for _, res := range resources {
		if ctx.Err() != nil {
			break
		}
		r.list(ctx, res, items)
	}
	close(items)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := newResults(r.a.opts.ViolationsLimit)
	for _, w := range workers {
		if w.reports != nil {
			w.reports.Flush()
		}
		out.merge(w.results)
		r.report.ObjectsReviewed += w.reviewed
		r.report.ObjectsExempt += w.exempt
		r.report.ReviewErrors += w.reviewErrors
	}
	return out, nil
}

// list lists one resource into items. A failure, even part-way, marks its
// kind as failed so that the violations found for it before are kept.
func (r *run) list(ctx context.Context, res resource, items chan<- item) {
	rr := ResourceReport{Resource: res.gvr, Kind: res.kind}
	pages, err := r.rawPages(ctx, res.gvr, func(page *rawPage) error {
		for i := range page.Items {
			select {
			case items <- item{raw: page.Items[i], res: &res}:
				page.Items[i] = nil // freed once reviewed, not with the page
				rr.Objects++
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	rr.Pages = pages
	if err != nil && ctx.Err() == nil {
		rr.Err = err
		r.fail.kinds[res.groupKind()] = true
		r.report.ListErrors++
		listErrors.WithLabelValues(res.gvr.Group, res.gvr.Version, res.gvr.Resource).Inc()
		r.log.Error(err, "Listing failed; the kind keeps the violations found earlier", "resource", res.gvr.String(), "listed", rr.Objects)
	}
	r.report.Resources = append(r.report.Resources, rr)
	r.report.ObjectsListed += rr.Objects
}

// work reviews objects from items until it is closed.
func (r *run) work(ctx context.Context, items <-chan item, w *worker) {
	for it := range items {
		if ctx.Err() != nil {
			continue // drain
		}
		obj, err := it.decode()
		if err != nil {
			w.reviewErrors++
			reviewErrors.Inc()
			r.log.Error(err, "Decoding a listed object failed")
			continue
		}
		if r.exempt(obj) {
			w.exempt++
			continue
		}
		var ns *corev1.Namespace
		if name := obj.GetNamespace(); name != "" {
			// A failure is logged once and counted by the cache; the
			// object is reviewed without its Namespace, as the engine
			// then judges namespaceSelectors unknown.
			ns, _ = r.namespaces.get(ctx, name)
		}
		in := &engine.Object{Object: obj, Namespace: ns, Source: engine.SourceOriginal, ListMatched: r.reports != nil && r.reports.pass}
		resp, err := r.a.reviewer.Review(ctx, in, engine.EnforcementPointAudit)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			w.reviewErrors++
			reviewErrors.Inc()
			r.log.Error(err, "Reviewing an object failed", "gvk", obj.GroupVersionKind().String(), "object", klog.KObj(obj))
			// A failed expansion leaves the object's own verdict, which
			// stands (the object counts as a review error, not reviewed).
			if _, ok := errors.AsType[*expansion.Error](err); !ok || resp == nil {
				continue
			}
		} else {
			w.reviewed++
		}
		for i := range resp.Violations {
			r.record(w, obj, &resp.Violations[i])
		}
		if w.reports != nil {
			r.reports.addResults(w.reports, it.res, obj, resp)
		}
	}
}

// record adds one violation to the worker's tallies.
func (r *run) record(w *worker, obj *unstructured.Unstructured, v *engine.Violation) {
	if v.Constraint == nil {
		return
	}
	key := constraintKey{Kind: v.Constraint.GetKind(), Name: v.Constraint.GetName()}
	if _, ok := r.constraints[key]; !ok {
		return // created during the run: audited next run
	}
	gvk := obj.GroupVersionKind()
	sv := &StatusViolation{
		Group:             gvk.Group,
		Version:           gvk.Version,
		Kind:              gvk.Kind,
		Namespace:         obj.GetNamespace(),
		Name:              obj.GetName(),
		Message:           truncateMessage(v.Message),
		EnforcementAction: v.EnforcementAction,
	}
	if v.EnforcementAction == engine.ActionScoped {
		sv.EnforcementActions = append([]string(nil), v.Actions...)
	}
	w.results.add(key, sv, v.Actions)
	if !r.a.opts.LogViolations && r.a.opts.Events == nil {
		return
	}
	gv := &violations.Violation{
		Constraint:        v.Constraint,
		EnforcementAction: v.EnforcementAction,
		ScopedActions:     sv.EnforcementActions,
		Message:           sv.Message,
		Details:           violations.Details(v.Metadata, v.Details),
		Resource:          gvk,
		Namespace:         obj.GetNamespace(),
		Name:              obj.GetName(),
		UID:               obj.GetUID(),
		ResourceVersion:   obj.GetResourceVersion(),
		Labels:            obj.GetLabels(),
	}
	if r.a.opts.LogViolations {
		r.log.Info(sv.Message, gv.AuditKeys()...)
	}
	r.a.opts.Events.Audit(gv, auditID(r.start))
}

// exempt reports whether obj is in a namespace the Config excludes; a
// Namespace is judged by its own name.
func (r *run) exempt(obj *unstructured.Unstructured) bool {
	ns := obj.GetNamespace()
	if ns == "" {
		if !engine.IsNamespace(obj) {
			return false
		}
		ns = obj.GetName()
	}
	return isExempt(&r.a.opts, ns)
}

// isExempt reports whether the objects of namespace ns are not audited: the
// Config excludes it from the audit.
func isExempt(o *Options, ns string) bool {
	return o.Excluded != nil && o.Excluded(ns)
}
