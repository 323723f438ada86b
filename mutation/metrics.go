package mutation

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/metrics"
)

// iterationBuckets are Gatekeeper's for
// gatekeeper_mutation_system_iterations.
var iterationBuckets = []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 50, 100, 200, 500}

// Metrics records gatekeeper_mutation_system_iterations, by success (the
// object converged or not). It is an IterationRecorder.
type Metrics struct {
	iterations [2]prometheus.Observer // false, true
}

// NewMetrics registers the metric with reg; registering twice, as several
// managers in one process do, shares the collector.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatekeeper_mutation_system_iterations",
		Help:    "The distribution of Mutation System iterations before convergence, by success",
		Buckets: iterationBuckets,
	}, []string{"success"})
	h, err := metrics.Register(reg, h)
	if err != nil {
		return nil, fmt.Errorf("registering gatekeeper_mutation_system_iterations: %w", err)
	}
	m := &Metrics{}
	for i, ok := range []bool{false, true} {
		m.iterations[i] = h.WithLabelValues(strconv.FormatBool(ok))
	}
	return m, nil
}

// RecordIterations records one Mutate.
func (m *Metrics) RecordIterations(converged bool, iterations int) {
	if m == nil {
		return
	}
	i := 0
	if converged {
		i = 1
	}
	m.iterations[i].Observe(float64(iterations))
}
