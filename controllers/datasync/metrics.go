package datasync

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Reasons of portcullis_sync_errors_total.
const (
	// ReasonInvalidKind: a kind listed by the Config or a SyncSet is not
	// served by the API server, or the entry lacks its version or kind.
	ReasonInvalidKind = "invalid_kind"
	// ReasonWatch: listing or watching a synced kind failed (retried).
	ReasonWatch = "watch"
	// ReasonInventory: the engine refused an object.
	ReasonInventory = "inventory"
)

// metrics are registered once on controller-runtime's registry, which
// every manager in the process shares.
type metrics struct {
	errors       *prometheus.CounterVec
	invalidKinds prometheus.Gauge
	objects      *prometheus.GaugeVec
}

var (
	metricsOnce   sync.Once
	sharedMetrics *metrics
	metricsErr    error
)

func getMetrics() (*metrics, error) {
	metricsOnce.Do(func() {
		m := &metrics{
			errors: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "portcullis_sync_errors_total",
				Help: "Errors syncing data into data.inventory, by reason: invalid_kind, watch, inventory.",
			}, []string{"reason"}),
			invalidKinds: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "portcullis_sync_invalid_kinds",
				Help: "Kinds listed by the Config or the SyncSets that cannot be synced (not served, or incomplete).",
			}),
			objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "portcullis_sync_objects",
				Help: "Objects in data.inventory, by synced kind.",
			}, []string{"kind"}),
		}
		m.errors, metricsErr = register(ctrlmetrics.Registry, m.errors)
		if metricsErr != nil {
			return
		}
		if m.invalidKinds, metricsErr = register(ctrlmetrics.Registry, m.invalidKinds); metricsErr != nil {
			return
		}
		if m.objects, metricsErr = register(ctrlmetrics.Registry, m.objects); metricsErr != nil {
			return
		}
		sharedMetrics = m
	})
	return sharedMetrics, metricsErr
}

// register registers c, or returns the collector already registered under
// its name.
func register[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	err := r.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

func (m *metrics) countError(reason string) {
	if m != nil {
		m.errors.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) setObjects(gvk schema.GroupVersionKind, n int) {
	if m != nil {
		m.objects.WithLabelValues(kindName(gvk)).Set(float64(n))
	}
}

func (m *metrics) deleteObjects(gvk schema.GroupVersionKind) {
	if m != nil {
		m.objects.DeleteLabelValues(kindName(gvk))
	}
}

func (m *metrics) setInvalidKinds(n int) {
	if m != nil {
		m.invalidKinds.Set(float64(n))
	}
}
