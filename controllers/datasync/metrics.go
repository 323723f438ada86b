package datasync

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	imetrics "github.com/portcullis-dev/portcullis/internal/metrics"
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

	// Gatekeeper's.
	syncObjects  *prometheus.GaugeVec
	syncDuration prometheus.Histogram
	syncLastRun  prometheus.Gauge

	mu sync.Mutex
	// byGVK is, by synced kind, its objects in the inventory and those it
	// refused; gatekeeper_sync sums them by Kind, as Gatekeeper's kind
	// label has no group or version.
	byGVK map[schema.GroupVersionKind][2]int
}

// syncDurationBuckets are Gatekeeper's for gatekeeper_sync_duration_seconds:
// 0.1 ms to 1 ms by 0.1 ms, to 5 ms by 1 ms, then 10 ms to 50 ms by 10 ms.
var syncDurationBuckets = []float64{
	0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.0008, 0.0009,
	0.001, 0.002, 0.003, 0.004, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05,
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
			syncObjects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "gatekeeper_sync",
				Help: "Total number of resources of each kind being cached, by status: active in data.inventory, error refused by it",
			}, []string{"kind", "status"}),
			syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "gatekeeper_sync_duration_seconds",
				Help:    "Latency of sync operation in seconds: adding or removing one object in data.inventory",
				Buckets: syncDurationBuckets,
			}),
			syncLastRun: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "gatekeeper_sync_last_run_time",
				Help: "Timestamp of last sync operation, in seconds since the Unix epoch",
			}),
			byGVK: map[schema.GroupVersionKind][2]int{},
		}
		m.errors, metricsErr = imetrics.Register(ctrlmetrics.Registry, m.errors)
		if metricsErr != nil {
			return
		}
		if m.invalidKinds, metricsErr = imetrics.Register(ctrlmetrics.Registry, m.invalidKinds); metricsErr != nil {
			return
		}
		if m.objects, metricsErr = imetrics.Register(ctrlmetrics.Registry, m.objects); metricsErr != nil {
			return
		}
		if m.syncObjects, metricsErr = imetrics.Register(ctrlmetrics.Registry, m.syncObjects); metricsErr != nil {
			return
		}
		if m.syncDuration, metricsErr = imetrics.Register(ctrlmetrics.Registry, m.syncDuration); metricsErr != nil {
			return
		}
		if m.syncLastRun, metricsErr = imetrics.Register(ctrlmetrics.Registry, m.syncLastRun); metricsErr != nil {
			return
		}
		sharedMetrics = m
	})
	return sharedMetrics, metricsErr
}

func (m *metrics) countError(reason string) {
	if m != nil {
		m.errors.WithLabelValues(reason).Inc()
	}
}

// setObjects records the objects of a kind in the inventory, and those
// it refused.
func (m *metrics) setObjects(gvk schema.GroupVersionKind, n, failed int) {
	if m != nil {
		m.objects.WithLabelValues(kindName(gvk)).Set(float64(n))
		m.setSync(gvk, &[2]int{n, failed})
	}
}

func (m *metrics) deleteObjects(gvk schema.GroupVersionKind) {
	if m != nil {
		m.objects.DeleteLabelValues(kindName(gvk))
		m.setSync(gvk, nil)
	}
}

// setSync sets gatekeeper_sync for gvk's Kind from every synced kind of
// that Kind; counts nil forgets gvk. A Kind no longer synced stays at 0,
// as in Gatekeeper.
func (m *metrics) setSync(gvk schema.GroupVersionKind, counts *[2]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if counts == nil {
		delete(m.byGVK, gvk)
	} else {
		m.byGVK[gvk] = *counts
	}
	var active, failed int
	for g, c := range m.byGVK {
		if g.Kind == gvk.Kind {
			active += c[0]
			failed += c[1]
		}
	}
	m.syncObjects.WithLabelValues(gvk.Kind, "active").Set(float64(active))
	m.syncObjects.WithLabelValues(gvk.Kind, "error").Set(float64(failed))
}

// observeSync records one add or removal in the inventory.
func (m *metrics) observeSync(d time.Duration) {
	if m != nil {
		m.syncDuration.Observe(d.Seconds())
		m.syncLastRun.Set(float64(time.Now().UnixNano()) / 1e9)
	}
}

func (m *metrics) setInvalidKinds(n int) {
	if m != nil {
		m.invalidKinds.Set(float64(n))
	}
}
