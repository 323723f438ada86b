package audit

import (
	"context"
	"errors"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
	"github.com/portcullis-dev/portcullis/audit/policyreport"
	"github.com/portcullis-dev/portcullis/engine"
)

// Annotations that fill the reports' results.
const (
	// AnnotationSeverity on a constraint is its results' severity:
	// critical, high, medium, low or info.
	AnnotationSeverity = "policy.portcullis.dev/severity"
	// AnnotationCategory on a template is its constraints' results'
	// category; without it, the template's AnnotationTitle is.
	AnnotationCategory = "policy.portcullis.dev/category"
	// AnnotationTitle is the gatekeeper-library's title of a template.
	AnnotationTitle = "metadata.gatekeeper.sh/title"
)

var templateGVR = schema.GroupVersionResource{Group: "templates.gatekeeper.sh", Version: "v1", Resource: "constrainttemplates"}

var severities = []v1alpha2.PolicyResultSeverity{
	v1alpha2.SeverityCritical, v1alpha2.SeverityHigh, v1alpha2.SeverityMedium, v1alpha2.SeverityLow, v1alpha2.SeverityInfo,
}

// reportRun collects one run's results for the reports.
type reportRun struct {
	collector *policyreport.Collector
	// policies index the constraints in the collector's policies.
	policies map[constraintKey]int
	pass     bool
}

// startReports starts collecting the run's results for the reports of
// the kinds in resources, which it numbers.
func (r *run) startReports(ctx context.Context, resources []resource) {
	templates := r.templateInfo(ctx)
	policies := make([]policyreport.Policy, 0, len(r.order))
	index := make(map[constraintKey]int, len(r.order))
	for i, key := range r.order {
		c := r.constraints[key]
		t := templates[key.Kind]
		p := policyreport.Policy{Name: key.String(), Rule: t.name, Category: t.category}
		if p.Rule == "" {
			p.Rule = strings.ToLower(key.Kind)
		}
		if s := c.obj.GetAnnotations()[AnnotationSeverity]; s != "" {
			sev := v1alpha2.PolicyResultSeverity(strings.ToLower(strings.TrimSpace(s)))
			if slices.Contains(severities, sev) {
				p.Severity = sev
			} else {
				r.log.Info("Ignoring an invalid severity", "constraint", key.String(), "annotation", AnnotationSeverity,
					"value", s, "allowed", severities)
			}
		}
		policies = append(policies, p)
		index[key] = i
	}
	kinds := make([]policyreport.Kind, len(resources))
	for i := range resources {
		resources[i].index = i
		kinds[i] = policyreport.Kind{APIVersion: resources[i].gvr.GroupVersion().String(), Kind: resources[i].kind}
	}
	c, err := policyreport.NewCollector(policies, kinds, policyreport.CollectOptions{Dirs: r.a.opts.spillDirs()})
	if err != nil {
		r.log.Info("Report results are held in memory", "reason", err.Error())
	}
	r.reports = &reportRun{collector: c, policies: index, pass: r.a.opts.ReportsPass}
}

// templateRef is what reports take from a template.
type templateRef struct{ name, category string }

// templateInfo reads each template's name and category, by kind. A
// failure leaves rules named after the kind and categories empty.
func (r *run) templateInfo(ctx context.Context) map[string]templateRef {
	out := map[string]templateRef{}
	_, err := r.pages(ctx, templateGVR, func(list *unstructured.UnstructuredList) error {
		for i := range list.Items {
			u := &list.Items[i]
			kind, _, _ := unstructured.NestedString(u.Object, "spec", "crd", "spec", "names", "kind")
			a := u.GetAnnotations()
			category := a[AnnotationCategory]
			if category == "" {
				category = a[AnnotationTitle]
			}
			out[kind] = templateRef{name: u.GetName(), category: category}
		}
		return nil
	})
	if err != nil {
		r.log.Error(err, "Listing templates failed; report results have no categories this run")
	}
	return out
}

// closeReports releases what the run's reports hold.
func (r *run) closeReports() {
	if r.reports != nil {
		_ = r.reports.collector.Close()
	}
}

// outcome maps a violation to a report result: fail when deny applies at
// the audit, else warn when warn does, else skip (dryrun, or only other
// actions). The action is recorded where the outcome does not tell it.
func outcome(v *engine.Violation) (v1alpha2.PolicyResult, string) {
	var action string
	if v.EnforcementAction != engine.ActionDeny && v.EnforcementAction != engine.ActionWarn {
		action = v.EnforcementAction
	}
	switch {
	case v.HasAction(engine.ActionDeny):
		return v1alpha2.ResultFail, action
	case v.HasAction(engine.ActionWarn):
		return v1alpha2.ResultWarn, action
	default:
		return v1alpha2.ResultSkip, action
	}
}

// addResults adds an object's results to the worker's buffer: one per
// violation, and with pass results on, a pass for each constraint it
// matched without violating.
func (rr *reportRun) addResults(buf *policyreport.Buffer, res *resource, obj *unstructured.Unstructured, resp *engine.Response) {
	base := policyreport.Result{
		Kind: res.index, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: string(obj.GetUID()),
	}
	var violated map[constraintKey]bool
	for i := range resp.Violations {
		v := &resp.Violations[i]
		if v.Constraint == nil {
			continue
		}
		key := constraintKey{Kind: v.Constraint.GetKind(), Name: v.Constraint.GetName()}
		p, ok := rr.policies[key]
		if !ok {
			continue // created during the run
		}
		if rr.pass {
			if violated == nil {
				violated = map[constraintKey]bool{}
			}
			violated[key] = true
		}
		res := base
		res.Policy, res.Message = p, v.Message
		res.Outcome, res.Action = outcome(v)
		buf.Add(&res)
	}
	if !rr.pass {
		return
	}
	for _, c := range resp.Matched {
		key := constraintKey{Kind: c.GetKind(), Name: c.GetName()}
		p, ok := rr.policies[key]
		if !ok || violated[key] {
			continue
		}
		res := base
		res.Policy, res.Outcome = p, v1alpha2.ResultPass
		buf.Add(&res)
	}
}

// dropSkipped leaves out of the reports the results of the constraints
// whose status was not written as they went during the run (deleted, or
// their template removed), as their statuses are.
func (r *run) dropSkipped() {
	for i := range r.report.Constraints {
		cr := &r.report.Constraints[i]
		if cr.Skipped != SkippedDeleted && cr.Skipped != SkippedTemplateRemoved {
			continue
		}
		if p, ok := r.reports.policies[constraintKey{Kind: cr.Kind, Name: cr.Name}]; ok {
			r.reports.collector.Drop(p)
		}
	}
}

// writeReports writes the reports of a complete run. Failures are logged
// and counted; they do not fail the run, whose statuses are written.
func (r *run) writeReports(ctx context.Context) {
	in := policyreport.Input{
		Collector: r.reports.collector,
		Start:     r.start,
		Live: func(name string) (bool, error) {
			return r.namespaces.live(ctx, name)
		},
	}
	if !r.fail.empty() {
		in.Kept = func(apiVersion, kind string) bool {
			gv, err := schema.ParseGroupVersion(apiVersion)
			return err == nil && r.fail.covers(schema.GroupKind{Group: gv.Group, Kind: kind})
		}
	}
	stats, err := r.a.reportWriter.Write(ctx, in)
	r.report.Reports = stats
	r.report.ReportSpilled = r.reports.collector.Spilled()
	reportWrites.Add(float64(stats.Writes))
	reportBytes.Add(float64(stats.Bytes))
	reportDeletes.Add(float64(stats.Deletes))
	reportErrors.Add(float64(stats.Errors))
	if err != nil && !errors.Is(err, context.Canceled) {
		r.report.Reports.Errors++
		reportErrors.Inc()
		r.log.Error(err, "Writing the reports failed; they are left as they were")
	}
}

// reportResources are the kinds the reports are written as, which the
// audit does not review when it writes reports: a run would otherwise
// list, page by page, the reports of the run before.
var reportResources = []schema.GroupResource{
	{Group: policyreport.WGPolicy.GroupVersion.Group, Resource: policyreport.WGPolicy.Resource},
	{Group: policyreport.WGPolicy.GroupVersion.Group, Resource: policyreport.WGPolicy.ClusterResource},
	{Group: policyreport.OpenReports.GroupVersion.Group, Resource: policyreport.OpenReports.Resource},
	{Group: policyreport.OpenReports.GroupVersion.Group, Resource: policyreport.OpenReports.ClusterResource},
}

func isReportResource(r resource) bool {
	return slices.Contains(reportResources, r.gvr.GroupResource())
}
