package vap

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	imetrics "github.com/portcullis-dev/portcullis/internal/metrics"
)

// Label values of the status label, Gatekeeper's.
const (
	metricActive = "active"
	metricError  = "error"
)

// metrics are gatekeeper_validating_admission_policies and
// gatekeeper_validating_admission_policy_bindings: how many policies and
// bindings this replica generated (active) or failed to (error). Both
// labels are always exported, at 0 when nothing has them, as Gatekeeper
// does; only replicas that generate count anything.
type metrics struct {
	policies, bindings *prometheus.GaugeVec
}

var (
	metricsOnce   sync.Once
	sharedMetrics *metrics
	metricsErr    error
)

// getMetrics registers the gauges on controller-runtime's registry once
// per process; several managers in one process share them.
func getMetrics() (*metrics, error) {
	metricsOnce.Do(func() {
		m := &metrics{
			policies: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "gatekeeper_validating_admission_policies",
				Help: "Number of ValidatingAdmissionPolicy resources by generation status (active, error)",
			}, []string{"status"}),
			bindings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "gatekeeper_validating_admission_policy_bindings",
				Help: "Number of ValidatingAdmissionPolicyBinding resources by generation status (active, error)",
			}, []string{"status"}),
		}
		for _, g := range []**prometheus.GaugeVec{&m.policies, &m.bindings} {
			var err error
			if *g, err = imetrics.Register(ctrlmetrics.Registry, *g); err != nil {
				metricsErr = fmt.Errorf("registering the ValidatingAdmissionPolicy metrics: %w", err)
				return
			}
			(*g).WithLabelValues(metricActive)
			(*g).WithLabelValues(metricError)
		}
		sharedMetrics = m
	})
	return sharedMetrics, metricsErr
}

// tally counts policies or bindings by name, and sets its gauge.
type tally struct {
	mu     sync.Mutex
	gauge  *prometheus.GaugeVec
	byName map[string]string
}

func newTally(g *prometheus.GaugeVec) *tally { return &tally{gauge: g, byName: map[string]string{}} }

// set records name as active (ok) or error.
func (t *tally) set(name string, ok bool) {
	s := metricError
	if ok {
		s = metricActive
	}
	t.update(func() { t.byName[name] = s })
}

// forget stops counting name.
func (t *tally) forget(name string) { t.update(func() { delete(t.byName, name) }) }

func (t *tally) update(change func()) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	change()
	counts := map[string]int{}
	for _, s := range t.byName {
		counts[s]++
	}
	for _, s := range []string{metricActive, metricError} {
		t.gauge.WithLabelValues(s).Set(float64(counts[s]))
	}
}

// RegisterMetrics registers the gauges, at 0, on a replica that does not
// generate policies, as Gatekeeper exports them on every replica.
func RegisterMetrics() error {
	_, err := getMetrics()
	return err
}
