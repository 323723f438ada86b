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
)

var registerOnce sync.Once

// registerMetrics registers the audit's metrics once per process.
func registerMetrics() {
	registerOnce.Do(func() {
		ctrlmetrics.Registry.MustRegister(durationSeconds, lastRunTime, lastRunEndTime, violationsGauge,
			objectsReviewed, listErrors, reviewErrors, statusErrors, runErrors)
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
