package audit

import (
	"runtime"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestOptionsFlags(t *testing.T) {
	o := NewOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	for _, name := range []string{"exempt-namespace", "exempt-namespace-prefix", "exempt-namespace-suffix"} {
		if fs.Lookup(name) != nil {
			t.Errorf("AddFlags registers --%s, which exempts from the webhook only, as in Gatekeeper", name)
		}
	}
	if o.Interval != 60*time.Second || o.ChunkSize != 500 || o.ViolationsLimit != 20 || o.Workers != 0 ||
		o.MatchKindOnly || !o.LogViolations || o.EmitEvents || o.EventsInvolvedNamespace || o.StatusOnChange || o.StatusRefresh != time.Hour {
		t.Errorf("defaults: %+v", o)
	}
	err := fs.Parse([]string{
		"--audit-interval=0", "--audit-match-kind-only", "--audit-chunk-size=100", "--constraint-violations-limit=5",
		"--log-audit-violations=false", "--emit-audit-events", "--audit-events-involved-namespace", "--audit-workers=3", "--audit-status-on-change", "--audit-status-refresh=0",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{MatchKindOnly: true, ChunkSize: 100, ViolationsLimit: 5, LogViolations: false, Workers: 3}
	if o.Interval != want.Interval || o.MatchKindOnly != want.MatchKindOnly || o.ChunkSize != want.ChunkSize ||
		o.ViolationsLimit != want.ViolationsLimit || o.LogViolations != want.LogViolations || o.Workers != want.Workers ||
		!o.StatusOnChange || o.StatusRefresh != 0 || !o.EmitEvents || !o.EventsInvolvedNamespace {
		t.Errorf("parsed: %+v, want %+v", o, want)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, mutate := range map[string]func(*Options){
		"negative interval": func(o *Options) { o.Interval = -time.Second },
		"negative chunk":    func(o *Options) { o.ChunkSize = -1 },
		"negative limit":    func(o *Options) { o.ViolationsLimit = -1 },
		"negative workers":  func(o *Options) { o.Workers = -1 },
		"negative refresh":  func(o *Options) { o.StatusRefresh = -time.Second },
		"unknown reports":   func(o *Options) { o.Reports = "kyverno" },
		"pass, no reports":  func(o *Options) { o.ReportsPass = true },
		"negative results":  func(o *Options) { o.Reports, o.ReportsMaxResults = ReportsPolicyReport, -1 },
		"negative qps":      func(o *Options) { o.Reports, o.ReportsQPS = ReportsPolicyReport, -1 },
		"negative writers":  func(o *Options) { o.Reports, o.ReportsConcurrency = ReportsPolicyReport, -1 },
		"negative metrics":  func(o *Options) { o.MetricsMaxNamespaces = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			o := NewOptions()
			mutate(&o)
			if err := o.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
		})
	}
	o := NewOptions()
	o.Workers = 0
	if o.workers() != runtime.GOMAXPROCS(0) {
		t.Errorf("workers() = %d with Workers 0, want GOMAXPROCS", o.workers())
	}
}

// TestIsExempt: only the Config's exclusions skip a namespace in the audit.
func TestIsExempt(t *testing.T) {
	o := &Options{Excluded: func(ns string) bool { return ns == "excluded-by-config" }}
	for ns, want := range map[string]bool{"kube-system": false, "default": false, "excluded-by-config": true} {
		if got := isExempt(o, ns); got != want {
			t.Errorf("isExempt(%q) = %v, want %v", ns, got, want)
		}
	}
}

// TestReportFlags: reports are off by default, as in Gatekeeper; the
// flags set them.
func TestReportFlags(t *testing.T) {
	o := NewOptions()
	if o.Reports != "" || o.ReportsPass || o.MetricsMaxNamespaces != DefaultMetricsMaxNamespaces {
		t.Errorf("defaults: reports %q, pass %v, metrics namespaces %d", o.Reports, o.ReportsPass, o.MetricsMaxNamespaces)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	err := fs.Parse([]string{"--audit-reports=policyreport", "--audit-reports-pass", "--audit-reports-max-results=50",
		"--audit-reports-concurrency=2", "--audit-reports-qps=5.5", "--audit-metrics-max-namespaces=7"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Reports != ReportsPolicyReport || !o.ReportsPass || o.ReportsMaxResults != 50 || o.ReportsConcurrency != 2 ||
		o.ReportsQPS != 5.5 || o.MetricsMaxNamespaces != 7 {
		t.Errorf("parsed: %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
