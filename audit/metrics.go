package audit

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis-dev/portcullis/engine"
)

// Metrics of the audit, on controller-runtime's registry (served on the
// manager's /metrics).
var (
	durationSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "gatekeeper_audit_duration_seconds",
		Help: "Duration of audit runs.",
		// Gatekeeper's buckets: 1 min to 320 min.
		Buckets: []float64{60, 180, 300, 600, 900, 1200, 2400, 4800, 9600, 19200},
	})
	lastRunTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gatekeeper_audit_last_run_time",
		Help: "Start of the last audit run, in seconds since the Unix epoch.",
	})
	lastRunEndTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gatekeeper_audit_last_run_end_time",
		Help: "End of the last audit run, in seconds since the Unix epoch.",
	})
	violationsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gatekeeper_violations",
		Help: "Violations found by the last audit run, by enforcement action that applies at the audit.",
	}, []string{"enforcement_action"})
	objectsReviewed = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portcullis_audit_objects_reviewed",
		Help: "Objects reviewed by the last audit run.",
	})
	listErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_audit_list_errors_total",
		Help: "Kinds the audit failed to list completely (resource is empty when discovery of the group failed).",
	}, []string{"group", "version", "resource"})
	reviewErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_audit_review_errors_total",
		Help: "Objects the engine failed to review during the audit.",
	})
	statusErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_audit_status_errors_total",
		Help: "Constraint statuses the audit failed to write.",
	})
	runErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_audit_run_errors_total",
		Help: "Audit runs that failed before writing any status.",
	})
	violationsByConstraint = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "portcullis_audit_violations",
		Help: "Violations found by the last audit run, by constraint, enforcement action that applies at the audit and namespace " +
			"(empty for cluster-scoped objects, and for all when the violations span more than --audit-metrics-max-namespaces namespaces).",
	}, []string{"constraint_kind", "constraint_name", "enforcement_action", "namespace"})
	reportWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_audit_report_writes_total",
		Help: "Reports the audit wrote (--audit-reports); unchanged reports are not written.",
	})
	reportBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_audit_report_write_bytes_total",
		Help: "Bytes of the reports the audit wrote.",
	})
	reportDeletes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_audit_report_deletes_total",
		Help: "Reports the audit deleted: of namespaces gone, emptied a run before, or beyond the numbered reports needed.",
	})
	reportErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_audit_report_errors_total",
		Help: "Reports the API server refused to write or delete, and runs whose reports could not be written at all.",
	})
)

var registerOnce sync.Once

// registerMetrics registers the audit's metrics once per process.
func registerMetrics() {
	registerOnce.Do(func() {
		ctrlmetrics.Registry.MustRegister(durationSeconds, lastRunTime, lastRunEndTime, violationsGauge,
			objectsReviewed, listErrors, reviewErrors, statusErrors, runErrors, violationsByConstraint,
			reportWrites, reportBytes, reportDeletes, reportErrors)
	})
}

// recordRun updates the per-run metrics from a finished run.
func recordRun(rep *Report) {
	durationSeconds.Observe(rep.Duration().Seconds())
	lastRunTime.Set(float64(rep.Start.UnixNano()) / 1e9)
	lastRunEndTime.Set(float64(rep.End.UnixNano()) / 1e9)
	objectsReviewed.Set(float64(rep.ObjectsReviewed))
	for _, a := range []string{engine.ActionDeny, engine.ActionWarn, engine.ActionDryrun} {
		violationsGauge.WithLabelValues(a).Set(float64(rep.ViolationsByAction[a]))
	}
	for a, n := range rep.ViolationsByAction {
		violationsGauge.WithLabelValues(a).Set(float64(n))
	}
}

// seriesState is the label sets portcullis_audit_violations has, so that
// the next run sets to 0 or deletes the ones it does not find (rather than
// resetting the vector, which scrapes in between would see empty).
var seriesState struct {
	mu   sync.Mutex
	last map[[4]string]bool
}

// recordViolationSeries sets portcullis_audit_violations from a run's
// series: by namespace while they span at most maxNamespaces namespaces,
// else summed per constraint and action with the namespace empty. A series
// of the last run that this one did not find goes to 0 while its
// constraint is audited (in audited) and its namespace label is still in
// use (the counts are split by namespace, or it is the empty one), so that
// a namespace whose violations vanished reads 0; it is deleted with its
// constraint or its namespace (gone, nil for none gone), and when the
// counts stop being split by namespace. Zeros thus do not pile up as
// namespaces come and go.
func recordViolationSeries(series map[seriesKey]int, audited map[constraintKey]bool, maxNamespaces int, gone func(ns string) bool) {
	namespaces := map[string]bool{}
	for k := range series {
		if k.namespace != "" {
			namespaces[k.namespace] = true
		}
	}
	byNamespace := len(namespaces) <= maxNamespaces
	values := map[[4]string]float64{}
	for k, n := range series {
		ns := k.namespace
		if !byNamespace {
			ns = ""
		}
		values[[4]string{k.constraint.Kind, k.constraint.Name, k.action, ns}] += float64(n)
	}
	seriesState.mu.Lock()
	defer seriesState.mu.Unlock()
	for labels := range seriesState.last {
		if _, ok := values[labels]; ok {
			continue
		}
		var c constraintKey
		c.Kind, c.Name = labels[0], labels[1]
		if ns := labels[3]; audited[c] && (ns == "" || byNamespace && (gone == nil || !gone(ns))) {
			values[labels] = 0
			continue
		}
		violationsByConstraint.DeleteLabelValues(labels[:]...)
	}
	for labels, v := range values {
		violationsByConstraint.WithLabelValues(labels[:]...).Set(v)
	}
	seriesState.last = make(map[[4]string]bool, len(values))
	for labels := range values {
		seriesState.last[labels] = true
	}
}
