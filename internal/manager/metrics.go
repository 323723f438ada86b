package manager

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis-dev/portcullis/controllers"
	"github.com/portcullis-dev/portcullis/controllers/datasync"
	"github.com/portcullis-dev/portcullis/engine"
)

// registerEngineMetrics exports the engine's result cache counters and
// its templates by engine. With
// several managers in one process (tests, `portcullis dev`), the first
// one's are exported.
func registerEngineMetrics(eng *engine.Engine) error {
	collectors := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "portcullis_result_cache_hits_total",
			Help: "Constraint results taken from the result cache instead of evaluating the template",
		}, func() float64 { return float64(eng.CacheStats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "portcullis_result_cache_misses_total",
			Help: "Constraint results evaluated because the result cache did not hold them (templates it cannot cache are not counted)",
		}, func() float64 { return float64(eng.CacheStats().Misses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portcullis_result_cache_entries",
			Help: "Constraint results the result cache holds (at most --result-cache-size for each engine, Rego and CEL)",
		}, func() float64 { return float64(eng.CacheStats().Entries) }),
	}
	for _, name := range []string{engine.EngineRego, engine.EngineCEL} {
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "portcullis_templates",
			Help:        "ConstraintTemplates loaded, by the engine that evaluates them (Rego or K8sNativeValidation)",
			ConstLabels: prometheus.Labels{"engine": name},
		}, func() float64 { return float64(eng.TemplatesByEngine()[name]) }))
	}
	for _, c := range collectors {
		if err := ctrlmetrics.Registry.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				continue
			}
			return fmt.Errorf("registering the engine metrics: %w", err)
		}
	}
	return nil
}

// watchSources are what the watch manager gauges count: those of the
// manager set up last, when several run in one process.
type watchSources struct {
	watches *controllers.Watches
	sync    *datasync.Sync
}

var currentWatches atomic.Pointer[watchSources]

// registerWatchMetrics exports Gatekeeper's watch manager gauges: the
// kinds watched, constraint kinds and synced kinds, and the kinds intended,
// which adds the synced kinds the API server does not serve. With several
// managers in one process, the last one set up is counted.
func registerWatchMetrics(w *controllers.Watches, ds *datasync.Sync) error {
	currentWatches.Store(&watchSources{watches: w, sync: ds})
	count := func(intended bool) float64 {
		src := currentWatches.Load()
		n := len(src.watches.Kinds())
		if intended {
			n += src.sync.Wanted()
		} else {
			n += len(src.sync.Kinds())
		}
		return float64(n)
	}
	collectors := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatekeeper_watch_manager_watched_gvk",
			Help: "Total number of watched GroupVersionKinds: constraint kinds and synced kinds",
		}, func() float64 { return count(false) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatekeeper_watch_manager_intended_watch_gvk",
			Help: "Total number of GroupVersionKinds with a registered watch intent: constraint kinds and the kinds the Config and SyncSets list",
		}, func() float64 { return count(true) }),
	}
	for _, c := range collectors {
		if err := ctrlmetrics.Registry.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				continue
			}
			return fmt.Errorf("registering the watch metrics: %w", err)
		}
	}
	return nil
}
