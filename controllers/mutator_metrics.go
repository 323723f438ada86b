package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis-dev/portcullis/internal/metrics"
	"github.com/portcullis-dev/portcullis/mutation"
)

// mutatorIngestionBuckets are Gatekeeper's for
// gatekeeper_mutator_ingestion_duration_seconds: 1 ms to 10 ms by 1 ms,
// then to 50 ms by 10 ms.
var mutatorIngestionBuckets = []float64{
	0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.02, 0.03, 0.04, 0.05,
}

// mutatorMetrics are Gatekeeper's mutator metrics, on controller-runtime's
// registry, shared by the managers of one process as controllerMetrics are.
type mutatorMetrics struct {
	mutators       *prometheus.GaugeVec
	conflicting    prometheus.Gauge
	ingestCount    *prometheus.CounterVec
	ingestDuration *prometheus.HistogramVec
}

var (
	mutatorMetricsOnce   sync.Once
	sharedMutatorMetrics *mutatorMetrics
	mutatorMetricsErr    error
)

func newMutatorMetrics() (*mutatorMetrics, error) {
	mutatorMetricsOnce.Do(func() {
		m := &mutatorMetrics{
			mutators: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "gatekeeper_mutators",
				Help: "The current number of Mutator objects, by status (active: applied, error: not applied)",
			}, []string{"status"}),
			conflicting: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "gatekeeper_mutator_conflicting_count",
				Help: "The current number of conflicting Mutator objects",
			}),
			ingestCount: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "gatekeeper_mutator_ingestion_count",
				Help: "Total number of Mutator ingestion actions, by status (active, error)",
			}, []string{"status"}),
			ingestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "gatekeeper_mutator_ingestion_duration_seconds",
				Help:    "The distribution of Mutator ingestion durations in seconds, by status (active, error)",
				Buckets: mutatorIngestionBuckets,
			}, []string{"status"}),
		}
		var err error
		if m.mutators, err = metrics.Register(ctrlmetrics.Registry, m.mutators); err != nil {
			mutatorMetricsErr = err
			return
		}
		if m.conflicting, err = metrics.Register(ctrlmetrics.Registry, m.conflicting); err != nil {
			mutatorMetricsErr = err
			return
		}
		if m.ingestCount, err = metrics.Register(ctrlmetrics.Registry, m.ingestCount); err != nil {
			mutatorMetricsErr = err
			return
		}
		if m.ingestDuration, err = metrics.Register(ctrlmetrics.Registry, m.ingestDuration); err != nil {
			mutatorMetricsErr = err
			return
		}
		for _, s := range metricStatuses {
			m.mutators.WithLabelValues(s)
			m.ingestCount.WithLabelValues(s)
			m.ingestDuration.WithLabelValues(s)
		}
		sharedMutatorMetrics = m
	})
	return sharedMutatorMetrics, mutatorMetricsErr
}

// observeIngestion records one load of a mutator into the System.
func (m *mutatorMetrics) observeIngestion(ok bool, d time.Duration) {
	if m == nil {
		return
	}
	s := statusLabel(ok)
	m.ingestCount.WithLabelValues(s).Inc()
	m.ingestDuration.WithLabelValues(s).Observe(d.Seconds())
}

// report records a mutator's status (enforced nil forgets it) and the
// System's count of conflicting mutators.
func (m *mutatorMetrics) report(t *metricTally, s *mutation.System, key string, enforced *bool) {
	if m == nil {
		return
	}
	var labels *metricLabels
	if enforced != nil {
		labels = &metricLabels{status: statusLabel(*enforced)}
	}
	totals := t.set(key, labels)
	for _, st := range metricStatuses {
		m.mutators.WithLabelValues(st).Set(float64(totals[metricLabels{status: st}]))
	}
	_, conflicting := s.Counts()
	m.conflicting.Set(float64(conflicting))
}
