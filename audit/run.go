package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/portcullis-dev/portcullis/internal/violations"
)

// Reasons a constraint is not audited (ConstraintReport.Skipped).
const (
	SkippedTemplateNotLoaded = "template not loaded"
	SkippedTemplateRemoved   = "template removed during the run"
	SkippedDeleted           = "deleted during the run"
	SkippedInvalidKinds      = "invalid spec.match.kinds"
)

// errReplaced reports a constraint deleted and created again during a run.
var errReplaced = errors.New("constraint was replaced")

// run is one audit run.
type run struct {
	a      *Auditor
	log    logr.Logger
	start  time.Time
	report Report
	fail   *failures

	// constraints are the audited constraints, which existed when the run
	// started and whose template was loaded; order sorts their keys.
	constraints map[constraintKey]*constraintInfo
	order       []constraintKey

	namespaces *namespaceCache

	// reports collects the results for the reports, with Options.Reports.
	reports *reportRun
}

// constraintInfo is an audited constraint as listed at the start of the run.
type constraintInfo struct {
	key   constraintKey
	gvr   schema.GroupVersionResource
	uid   types.UID
	obj   *unstructured.Unstructured
	kinds kindMatcher
}

func newRun(a *Auditor) *run {
	start := time.Now()
	return &run{
		a:           a,
		log:         a.log.WithValues(violations.KeyProcess, violations.ProcessAudit, violations.KeyAuditID, auditID(start)),
		start:       start,
		report:      Report{Start: start, ViolationsByAction: map[string]int{}},
		fail:        newFailures(),
		constraints: map[constraintKey]*constraintInfo{},
	}
}

func (r *run) do(ctx context.Context) error {
	r.log.Info("auditing constraints and violations", violations.KeyEventType, violations.EventAuditStarted, violations.KeySemantic, true)
	resources, failedGroups, err := discoverResources(r.a.discovery)
	if err != nil {
		return err
	}
	for group, gerr := range failedGroups {
		r.fail.groups[group] = true
		r.report.ListErrors++
		listErrors.WithLabelValues(group, "", "").Inc()
		r.log.Error(gerr, "Discovering an API group failed; its kinds keep the violations found earlier", "group", group)
	}
	r.loadConstraints(ctx, resources)
	if err := r.loadNamespaces(ctx); err != nil {
		return err
	}
	matchers := make([]kindMatcher, 0, len(r.constraints))
	for _, c := range r.constraints {
		matchers = append(matchers, c.kinds)
	}
	selected := selectResources(resources, matchers, r.a.opts.MatchKindOnly)
	if r.a.reportWriter != nil {
		// The audit does not review the reports it writes.
		selected = slices.DeleteFunc(slices.Clone(selected), isReportResource)
		r.startReports(ctx, selected)
		defer r.closeReports()
	}
	found, err := r.review(ctx, selected)
	if err != nil {
		return err
	}
	r.report.series = found.series
	r.report.Violations = 0
	for _, t := range found.tallies {
		r.report.Violations += t.total
	}
	r.report.ViolationsByAction = found.byAction
	r.writeStatuses(ctx, found)
	r.logConstraints(found)
	if r.reports != nil && ctx.Err() == nil {
		r.dropSkipped()
		r.writeReports(ctx)
	}
	return ctx.Err()
}

// logConstraints logs Gatekeeper's constraint_audited line for each
// constraint with violations.
func (r *run) logConstraints(found *results) {
	for _, key := range r.order {
		t := found.tallies[key]
		if t == nil || t.total == 0 {
			continue
		}
		c := r.constraints[key]
		gvk := c.obj.GroupVersionKind()
		action, _, _ := unstructured.NestedString(c.obj.Object, "spec", "enforcementAction")
		if action == "" {
			action = "deny"
		}
		r.log.Info("audit results for constraint",
			violations.KeyEventType, violations.EventConstraintAudited, violations.KeySemantic, true,
			violations.KeyConstraintGroup, gvk.Group, violations.KeyConstraintAPIVersion, gvk.Version,
			violations.KeyConstraintKind, key.Kind, violations.KeyConstraintName, key.Name, violations.KeyConstraintNamespace, "",
			violations.KeyConstraintAction, action, violations.KeyConstraintStatus, "enforced",
			violations.KeyConstraintViolations, strconv.Itoa(t.total))
	}
}

// loadConstraints lists every constraint. Those whose template the engine
// holds are audited; the others are reported as skipped. A kind whose
// constraints cannot be listed is counted as a list error: its constraints'
// statuses are not written this run.
func (r *run) loadConstraints(ctx context.Context, resources []resource) {
	held := map[string]bool{}
	for _, k := range r.a.reviewer.TemplateKinds() {
		held[k] = true
	}
	for _, res := range resources {
		if res.gvr.Group != ConstraintGroup {
			continue
		}
		_, err := r.pages(ctx, res.gvr, func(list *unstructured.UnstructuredList) error {
			for i := range list.Items {
				r.addConstraint(res.gvr, &list.Items[i], held)
			}
			return nil
		})
		if err != nil {
			r.report.ListErrors++
			listErrors.WithLabelValues(res.gvr.Group, res.gvr.Version, res.gvr.Resource).Inc()
			r.log.Error(err, "Listing constraints failed; their statuses are left as they are", "resource", res.gvr.String())
		}
	}
	for k := range r.constraints {
		r.order = append(r.order, k)
	}
	sort.Slice(r.order, func(i, j int) bool { return r.order[i].String() < r.order[j].String() })
}

func (r *run) addConstraint(gvr schema.GroupVersionResource, u *unstructured.Unstructured, held map[string]bool) {
	key := constraintKey{Kind: u.GetKind(), Name: u.GetName()}
	if !held[key.Kind] {
		r.report.Constraints = append(r.report.Constraints, ConstraintReport{Kind: key.Kind, Name: key.Name, Skipped: SkippedTemplateNotLoaded})
		return
	}
	kinds, err := parseKinds(u)
	if err != nil {
		r.report.Constraints = append(r.report.Constraints, ConstraintReport{Kind: key.Kind, Name: key.Name, Skipped: SkippedInvalidKinds})
		r.log.Error(err, "Constraint not audited", "constraint", key.String())
		return
	}
	r.constraints[key] = &constraintInfo{key: key, gvr: gvr, uid: u.GetUID(), obj: u.DeepCopy(), kinds: kinds}
}

// loadNamespaces lists the Namespaces once for the run. Without them a
// namespaceSelector cannot be judged, so a failure stops the run.
func (r *run) loadNamespaces(ctx context.Context) error {
	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	r.namespaces = newNamespaceCache(r.a.dynamic.Resource(nsGVR), r.log)
	_, err := r.pages(ctx, nsGVR, func(list *unstructured.UnstructuredList) error {
		for i := range list.Items {
			r.namespaces.add(&list.Items[i])
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing Namespaces: %w", err)
	}
	return nil
}

// writeStatuses writes the status of every audited constraint.
func (r *run) writeStatuses(ctx context.Context, found *results) {
	held := map[string]bool{}
	for _, k := range r.a.reviewer.TemplateKinds() {
		held[k] = true
	}
	byKind := make(map[constraintKey]map[schema.GroupKind]int, len(r.order))
	for _, key := range r.order {
		if ctx.Err() != nil {
			return
		}
		c := r.constraints[key]
		t := found.tallies[key]
		cr := ConstraintReport{Kind: key.Kind, Name: key.Name}
		if t != nil {
			cr.Found = t.total
		}
		if !held[key.Kind] {
			cr.Skipped = SkippedTemplateRemoved
			r.report.Constraints = append(r.report.Constraints, cr)
			continue
		}
		want, wrote, err := r.writeStatus(ctx, c, t)
		switch {
		case apierrors.IsNotFound(err) || errors.Is(err, errReplaced):
			cr.Skipped = SkippedDeleted
		case err != nil:
			cr.Err = err
			r.report.StatusErrors++
			statusErrors.Inc()
			r.log.Error(err, "Writing constraint status failed", "constraint", key.String())
		default:
			cr.TotalViolations, cr.Written = want.total, wrote
			byKind[key] = want.byKind
			if wrote {
				r.report.StatusWrites++
			}
		}
		r.report.Constraints = append(r.report.Constraints, cr)
	}
	// Constraints gone or not written forget their counts.
	r.a.byKind = byKind
}

// writeStatus writes the audit's part of a constraint's status: every run,
// as Gatekeeper does, or with StatusOnChange only when needsWrite says so. The first attempt uses the constraint
// as listed at the start of the run; a conflict reads it again.
func (r *run) writeStatus(ctx context.Context, c *constraintInfo, found *tally) (desiredStatus, bool, error) {
	client := r.a.dynamic.Resource(c.gvr)
	obj := c.obj
	var (
		want  desiredStatus
		wrote bool
	)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if obj == nil {
			fresh, err := client.Get(ctx, c.key.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("getting %s: %w", c.key, err)
			}
			obj = fresh
		}
		if obj.GetUID() != c.uid {
			return fmt.Errorf("%s: %w", c.key, errReplaced)
		}
		status, _, err := unstructured.NestedMap(obj.Object, "status")
		if err != nil {
			return fmt.Errorf("reading the status of %s: %w", c.key, err)
		}
		if status == nil {
			status = map[string]any{}
		}
		cur := readAuditStatus(status)
		want = computeStatus(cur, found, r.fail, c.kinds, r.a.byKind[c.key], r.a.opts.ViolationsLimit)
		if r.a.opts.StatusOnChange && !needsWrite(cur, want, r.start, r.a.opts.StatusRefresh) {
			return nil
		}
		applyStatus(status, want, r.start)
		u := obj.DeepCopy()
		u.Object["status"] = status
		if _, err := client.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
			obj = nil
			return fmt.Errorf("updating the status of %s: %w", c.key, err)
		}
		wrote = true
		return nil
	})
	return want, wrote, err
}
