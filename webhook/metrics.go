package webhook

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/metrics"
)

// Decisions, the admission_status label of the request metrics.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	DecisionWarn  = "warn"
	DecisionError = "error"
)

// Metric names, as Gatekeeper's, so that its dashboards and alerts work.
const (
	requestCountName    = "gatekeeper_validation_request_count"
	requestDurationName = "gatekeeper_validation_request_duration_seconds"
)

// durationBuckets are Gatekeeper's (its webhook's stats reporter), so that
// dashboards and alerts made for it read the same le values: 1 ms to
// 10 ms by 1 ms, to 100 ms by 10 ms, to 1 s by 100 ms, to 10 s by 500 ms.
var durationBuckets = []float64{
	0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009,
	0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09,
	0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9,
	1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5, 9, 9.5, 10,
}

var decisions = [...]string{DecisionAllow, DecisionDeny, DecisionWarn, DecisionError}

// Metrics counts /v1/admit requests by decision and times them. The label
// children are resolved once, so recording takes no lock.
type Metrics struct {
	count    [len(decisions)][2]prometheus.Counter
	duration [len(decisions)][2]prometheus.Observer
}

// NewMetrics registers the request metrics with reg (controller-runtime's
// metrics.Registry in the manager). Registering twice, as several managers
// in one test process do, shares the collectors already registered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	count := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: requestCountName,
		Help: "Admission requests /v1/admit answered, by decision (allow, deny, warn, error) and dry run",
	}, []string{"admission_status", "admission_dryrun"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    requestDurationName,
		Help:    "Time /v1/admit took to answer, from reading the request to writing the response, in seconds",
		Buckets: durationBuckets,
	}, []string{"admission_status", "admission_dryrun"})
	var err error
	if count, err = metrics.Register(reg, count); err != nil {
		return nil, fmt.Errorf("registering %s: %w", requestCountName, err)
	}
	if duration, err = metrics.Register(reg, duration); err != nil {
		return nil, fmt.Errorf("registering %s: %w", requestDurationName, err)
	}
	m := &Metrics{}
	for i, d := range decisions {
		for j, dry := range []string{"false", "true"} {
			m.count[i][j] = count.WithLabelValues(d, dry)
			m.duration[i][j] = duration.WithLabelValues(d, dry)
		}
	}
	return m, nil
}

// observe records one request. A nil *Metrics records nothing.
func (m *Metrics) observe(decision string, dryRun bool, elapsed time.Duration) {
	if m == nil {
		return
	}
	i := decisionIndex(decision)
	j := 0
	if dryRun {
		j = 1
	}
	m.count[i][j].Inc()
	m.duration[i][j].Observe(elapsed.Seconds())
}

func decisionIndex(d string) int {
	for i, x := range decisions {
		if x == d {
			return i
		}
	}
	return len(decisions) - 1 // error
}
