package webhook

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// durationBuckets start at 100µs: most reviews take well under a
// millisecond, which Gatekeeper's 1 ms lowest bucket cannot show. They end
// at 3 s, the webhook configuration's default timeoutSeconds.
var durationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3,
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
	if err := reg.Register(count); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("registering %s: %w", requestCountName, err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, fmt.Errorf("registering %s: %w", requestCountName, err)
		}
		count = existing
	}
	if err := reg.Register(duration); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("registering %s: %w", requestDurationName, err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.HistogramVec)
		if !ok {
			return nil, fmt.Errorf("registering %s: %w", requestDurationName, err)
		}
		duration = existing
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
