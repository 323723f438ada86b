package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/metrics"
)

// The status label of Gatekeeper's constraint and template metrics.
const (
	MetricStatusActive = "active"
	MetricStatusError  = "error"
)

// actionUnrecognized is the enforcement_action label of a constraint whose
// action is none Gatekeeper knows.
const actionUnrecognized = "unrecognized"

// metricStatuses and metricActions are the label values always exported,
// at 0 when nothing has them, as Gatekeeper does.
var (
	metricStatuses = []string{MetricStatusActive, MetricStatusError}
	metricActions  = []string{engine.ActionDeny, engine.ActionDryrun, engine.ActionWarn, engine.ActionScoped, actionUnrecognized}
)

// ingestionBuckets are Gatekeeper's for
// gatekeeper_constraint_template_ingestion_duration_seconds: 10 ms to
// 100 ms by 10 ms, to 500 ms by 100 ms, then 1 s to 5 s by 1 s.
var ingestionBuckets = []float64{
	0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09,
	0.1, 0.2, 0.3, 0.4, 0.5, 1, 2, 3, 4, 5,
}

// controllerMetrics are the template and constraint reconcilers'
// Gatekeeper metrics, on controller-runtime's registry. With several
// managers in one process they share the collectors, and the last change
// in any of them sets the gauges.
type controllerMetrics struct {
	constraints    *prometheus.GaugeVec
	templates      *prometheus.GaugeVec
	ingestCount    *prometheus.CounterVec
	ingestDuration *prometheus.HistogramVec
	// templatesWithCEL counts the templates loaded with a
	// K8sNativeValidation (CEL) engine among their code.
	templatesWithCEL prometheus.Gauge
}

var (
	metricsOnce   sync.Once
	sharedMetrics *controllerMetrics
	metricsErr    error
)

func newControllerMetrics() (*controllerMetrics, error) {
	metricsOnce.Do(func() {
		m := &controllerMetrics{
			constraints: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "gatekeeper_constraints",
				Help: "Current number of known constraints, by enforcement action and status (active, error)",
			}, []string{"enforcement_action", "status"}),
			templates: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "gatekeeper_constraint_templates",
				Help: "Number of observed constraint templates, by status (active, error)",
			}, []string{"status"}),
			ingestCount: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "gatekeeper_constraint_template_ingestion_count",
				Help: "Total number of constraint template ingestion actions, by status (active, error)",
			}, []string{"status"}),
			ingestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "gatekeeper_constraint_template_ingestion_duration_seconds",
				Help:    "Distribution of how long it took to ingest a constraint template in seconds, by status (active, error)",
				Buckets: ingestionBuckets,
			}, []string{"status"}),
			templatesWithCEL: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "gatekeeper_constraint_templates_with_cel",
				Help: "Number of constraint templates with CEL engine",
			}),
		}
		var err error
		if m.constraints, err = metrics.Register(ctrlmetrics.Registry, m.constraints); err != nil {
			metricsErr = err
			return
		}
		if m.templates, err = metrics.Register(ctrlmetrics.Registry, m.templates); err != nil {
			metricsErr = err
			return
		}
		if m.ingestCount, err = metrics.Register(ctrlmetrics.Registry, m.ingestCount); err != nil {
			metricsErr = err
			return
		}
		if m.ingestDuration, err = metrics.Register(ctrlmetrics.Registry, m.ingestDuration); err != nil {
			metricsErr = err
			return
		}
		if m.templatesWithCEL, err = metrics.Register(ctrlmetrics.Registry, m.templatesWithCEL); err != nil {
			metricsErr = err
			return
		}
		for _, s := range metricStatuses {
			m.templates.WithLabelValues(s)
			for _, a := range metricActions {
				m.constraints.WithLabelValues(a, s)
			}
		}
		sharedMetrics = m
	})
	return sharedMetrics, metricsErr
}

// metricLabels are the labels one template or constraint counts under:
// its enforcement action (empty for a template) and status.
type metricLabels struct {
	action, status string
}

// metricTally is what one reconciler counts, by template or constraint.
type metricTally struct {
	mu    sync.Mutex
	byKey map[string]metricLabels
}

// set records key's labels (nil forgets key) and returns the totals.
func (t *metricTally) set(key string, labels *metricLabels) map[metricLabels]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey == nil {
		t.byKey = map[string]metricLabels{}
	}
	if labels == nil {
		delete(t.byKey, key)
	} else {
		t.byKey[key] = *labels
	}
	totals := map[metricLabels]int{}
	for _, l := range t.byKey {
		totals[l]++
	}
	return totals
}

// reportTemplate records a template's status (ok false: error); gone
// forgets it. A nil *controllerMetrics records nothing.
func (m *controllerMetrics) reportTemplate(t *metricTally, name string, ok, gone bool) {
	if m == nil {
		return
	}
	reportStatus(m.templates, t, name, ok, gone)
}

// reportStatus records the status of one object of a gauge counting them
// by status (ok false: error; gone forgets it) and sets the gauge.
func reportStatus(g *prometheus.GaugeVec, t *metricTally, name string, ok, gone bool) {
	var labels *metricLabels
	if !gone {
		labels = &metricLabels{status: statusLabel(ok)}
	}
	totals := t.set(name, labels)
	for _, s := range metricStatuses {
		g.WithLabelValues(s).Set(float64(totals[metricLabels{status: s}]))
	}
}

// reportCEL records whether a template loaded into the engine has CEL
// (K8sNativeValidation) code, as Gatekeeper counts them once ingested; gone
// forgets it. A nil *controllerMetrics records nothing.
func (m *controllerMetrics) reportCEL(t *metricTally, name string, cel bool) {
	if m == nil {
		return
	}
	var labels *metricLabels
	if cel {
		labels = &metricLabels{}
	}
	totals := t.set(name, labels)
	m.templatesWithCEL.Set(float64(totals[metricLabels{}]))
}

// observeIngestion records one compilation of a template into the engine.
func (m *controllerMetrics) observeIngestion(ok bool, d time.Duration) {
	if m == nil {
		return
	}
	s := statusLabel(ok)
	m.ingestCount.WithLabelValues(s).Inc()
	m.ingestDuration.WithLabelValues(s).Observe(d.Seconds())
}

// reportConstraint records a constraint's enforcement action and status;
// a nil u forgets it.
func (m *controllerMetrics) reportConstraint(t *metricTally, key string, u *unstructured.Unstructured, ok bool) {
	if m == nil {
		return
	}
	var labels *metricLabels
	if u != nil {
		labels = &metricLabels{action: constraintAction(u), status: statusLabel(ok)}
	}
	totals := t.set(key, labels)
	for _, s := range metricStatuses {
		for _, a := range metricActions {
			m.constraints.WithLabelValues(a, s).Set(float64(totals[metricLabels{action: a, status: s}]))
		}
	}
}

// constraintAction is the enforcement_action label of a constraint: its
// spec.enforcementAction, deny when unset, unrecognized when unknown.
func constraintAction(u *unstructured.Unstructured) string {
	a, _, _ := unstructured.NestedString(u.Object, "spec", "enforcementAction")
	switch a {
	case "":
		return engine.ActionDeny
	case engine.ActionDeny, engine.ActionDryrun, engine.ActionWarn, engine.ActionScoped:
		return a
	default:
		return actionUnrecognized
	}
}

func statusLabel(ok bool) string {
	if ok {
		return MetricStatusActive
	}
	return MetricStatusError
}
