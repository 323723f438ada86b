package manager_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/webhook"
)

// TestGatekeeperMetrics runs the controllers on a template that compiles,
// one that does not, a constraint and a Config that syncs Namespaces, then holds every gatekeeper_* metric
// registered to testdata/gatekeeper-metrics.txt: the same names, the same
// label names, and none missing.
func TestGatekeeperMetrics(t *testing.T) {
	m := startManager(t, startOpts{podID: "pod-metrics"})
	// The webhook's and the audit's metrics register when they are built.
	if _, err := webhook.NewMetrics(ctrlmetrics.Registry); err != nil {
		t.Fatal(err)
	}
	if _, err := webhook.NewMutationMetrics(ctrlmetrics.Registry); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.New(env.Config, nil, audit.NewOptions(), logr.Discard()); err != nil {
		t.Fatal(err)
	}
	testenv.EnsureNamespaces(t, env.Client, manager.DefaultNamespace)
	apply(t, syncConfig(manager.DefaultNamespace, "config", []schema.GroupVersionKind{{Version: "v1", Kind: "Namespace"}}))
	const kind = "K8sMetricsLabels"
	apply(t, requiredLabels("v1", kind))
	apply(t, plainConstraint(kind, "metrics-labels"))
	apply(t, celTemplate("K8sMetricsCEL"))
	apply(t, strings.Replace(strings.Replace(requiredLabels("v1", "K8sMetricsBroken"), "count(missing) > 0", "count(missing) >", 1),
		"package requiredlabels", "package brokenlabels", 1))
	eventually(t, "the constraint to be enforced", func(ctx context.Context) (bool, error) {
		return constraintEnforced(ctx, kind, "metrics-labels", m.podID)
	})
	eventually(t, "the broken template to report its error", func(ctx context.Context) (bool, error) {
		e, err := templateError(ctx, "k8smetricsbroken", m.podID)
		return e != nil, err
	})

	want, lazy := readMetricList(t, "testdata/gatekeeper-metrics.txt")
	eventually(t, "the gatekeeper_* gauges to count them", func(context.Context) (bool, error) {
		got := gatherGatekeeper(t)
		ok := gaugeValue(got["gatekeeper_constraints"], "enforcement_action", "deny", "status", "active") >= 1 &&
			gaugeValue(got["gatekeeper_constraint_templates"], "status", "active") >= 1 &&
			gaugeValue(got["gatekeeper_constraint_templates"], "status", "error") >= 1 &&
			gaugeValue(got["gatekeeper_constraint_templates_with_cel"]) >= 1 &&
			gaugeValue(got["gatekeeper_sync"], "kind", "Namespace", "status", "active") >= 1 &&
			gaugeValue(got["gatekeeper_watch_manager_watched_gvk"]) >= 2 &&
			gaugeValue(got["gatekeeper_watch_manager_intended_watch_gvk"]) >= 2
		return ok, fmt.Errorf("gauges: constraints %v, templates %v (with CEL %v), sync %v, watched %v, intended %v",
			got["gatekeeper_constraints"].GetMetric(), got["gatekeeper_constraint_templates"].GetMetric(),
			gaugeValue(got["gatekeeper_constraint_templates_with_cel"]),
			got["gatekeeper_sync"].GetMetric(), gaugeValue(got["gatekeeper_watch_manager_watched_gvk"]),
			gaugeValue(got["gatekeeper_watch_manager_intended_watch_gvk"]))
	})
	got := gatherGatekeeper(t)
	for name, mf := range got {
		labels, ok := want[name]
		if !ok {
			t.Errorf("%s is registered, and not in testdata/gatekeeper-metrics.txt", name)
			continue
		}
		for _, metric := range mf.GetMetric() {
			var names []string
			for _, l := range metric.GetLabel() {
				names = append(names, l.GetName())
			}
			slices.Sort(names)
			if !slices.Equal(names, labels) {
				t.Errorf("%s has labels %v, want %v", name, names, labels)
				break
			}
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok && !lazy[name] {
			t.Errorf("%s is not registered", name)
		}
	}
	if c := got["gatekeeper_constraint_template_ingestion_count"]; gaugeValue(c, "status", "active") < 1 || gaugeValue(c, "status", "error") < 1 {
		t.Errorf("gatekeeper_constraint_template_ingestion_count: want an active and an error ingestion, got %v", c)
	}
}

// celTemplate is a template with only K8sNativeValidation (CEL) code.
func celTemplate(kind string) string {
	return fmt.Sprintf(`apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: %s
spec:
  crd:
    spec:
      names:
        kind: %s
  targets:
  - target: admission.k8s.gatekeeper.sh
    code:
    - engine: K8sNativeValidation
      source:
        validations:
        - expression: "has(object.metadata.labels)"
          message: "labels are required"
`, strings.ToLower(kind), kind)
}

// readMetricList parses the list: names to sorted label names, and the
// names that may have no series.
func readMetricList(t *testing.T, path string) (map[string][]string, map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, lazy := map[string][]string{}, map[string]bool{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[len(f)-1] == "after-audit-run" {
			lazy[f[0]] = true
			f = f[:len(f)-1]
		}
		labels := slices.Clone(f[1:])
		slices.Sort(labels)
		want[f[0]] = labels
	}
	return want, lazy
}

// gatherGatekeeper gathers the gatekeeper_* metric families of
// controller-runtime's registry.
func gatherGatekeeper(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "gatekeeper_") {
			got[mf.GetName()] = mf
		}
	}
	return got
}

// gaugeValue is the value of the series of mf with the given label pairs
// (a counter's or a histogram's count too), or -1.
func gaugeValue(mf *dto.MetricFamily, pairs ...string) float64 {
	for _, metric := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range metric.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(pairs); i += 2 {
			if have[pairs[i]] != pairs[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case metric.GetGauge() != nil:
			return metric.GetGauge().GetValue()
		case metric.GetCounter() != nil:
			return metric.GetCounter().GetValue()
		case metric.GetHistogram() != nil:
			return float64(metric.GetHistogram().GetSampleCount())
		}
	}
	return -1
}
