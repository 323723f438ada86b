package manager

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

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
			Help: "Constraint results the result cache holds (at most --result-cache-size)",
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
