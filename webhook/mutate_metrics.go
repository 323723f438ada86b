package webhook

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/metrics"
)

// Outcomes of /v1/mutate, the mutation_status label of its metrics:
// Gatekeeper's success and skip, and error for a mutation that failed.
const (
	MutationSuccess = "success"
	MutationSkip    = "skip"
	MutationError   = "error"
)

var mutationOutcomes = [...]string{MutationSuccess, MutationSkip, MutationError}

// MutationMetrics counts /v1/mutate requests by outcome and times them:
// gatekeeper_mutation_request_count and
// gatekeeper_mutation_request_duration_seconds, with Gatekeeper's names,
// label and buckets.
type MutationMetrics struct {
	count    [len(mutationOutcomes)]prometheus.Counter
	duration [len(mutationOutcomes)]prometheus.Observer
}

// NewMutationMetrics registers the metrics with reg; registering twice
// shares the collectors.
func NewMutationMetrics(reg prometheus.Registerer) (*MutationMetrics, error) {
	count := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatekeeper_mutation_request_count",
		Help: "The number of requests that are routed to mutation webhook, by mutation_status (success, skip, error)",
	}, []string{"mutation_status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatekeeper_mutation_request_duration_seconds",
		Help:    "The mutation webhook response time in seconds, by mutation_status",
		Buckets: durationBuckets,
	}, []string{"mutation_status"})
	var err error
	if count, err = metrics.Register(reg, count); err != nil {
		return nil, fmt.Errorf("registering the mutation webhook metrics: %w", err)
	}
	if duration, err = metrics.Register(reg, duration); err != nil {
		return nil, fmt.Errorf("registering the mutation webhook metrics: %w", err)
	}
	m := &MutationMetrics{}
	for i, o := range mutationOutcomes {
		m.count[i] = count.WithLabelValues(o)
		m.duration[i] = duration.WithLabelValues(o)
	}
	return m, nil
}

// observe records one request. A nil *MutationMetrics records nothing.
func (m *MutationMetrics) observe(outcome string, elapsed time.Duration) {
	if m == nil {
		return
	}
	for i, o := range mutationOutcomes {
		if o == outcome {
			m.count[i].Inc()
			m.duration[i].Observe(elapsed.Seconds())
			return
		}
	}
}
