package audit

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/spf13/pflag"

	"github.com/portcullis-dev/portcullis/audit/policyreport"
	"github.com/portcullis-dev/portcullis/internal/flagvalue"
	"github.com/portcullis-dev/portcullis/internal/violations"
)

// Defaults of the audit flags, Gatekeeper's where Gatekeeper has the flag.
const (
	DefaultInterval        = 60 * time.Second
	DefaultChunkSize       = 500
	DefaultViolationsLimit = 20
	DefaultStatusRefresh   = time.Hour

	// DefaultMetricsMaxNamespaces is the default of
	// --audit-metrics-max-namespaces.
	DefaultMetricsMaxNamespaces = 100
)

// ReportsPolicyReport is the --audit-reports value that writes
// PolicyReports.
const ReportsPolicyReport = "policyreport"

// Options configure the audit. Build them with NewOptions and bind them with
// AddFlags.
type Options struct {
	// Interval is the time between the end of a run and the start of the
	// next (--audit-interval, whole seconds as in Gatekeeper or a Go
	// duration); 0 disables the audit.
	Interval time.Duration

	// MatchKindOnly lists only the kinds that constraints name in
	// spec.match.kinds (--audit-match-kind-only). A constraint naming no
	// kinds, or "*", makes every kind listed anyway.
	MatchKindOnly bool

	// ChunkSize is the page size of each List (--audit-chunk-size). Memory
	// is bounded by about two pages plus one object per worker; 0 lists each
	// kind in one request, which is not bounded.
	ChunkSize int64

	// ViolationsLimit caps status.violations of each constraint
	// (--constraint-violations-limit); status.totalViolations counts all.
	ViolationsLimit int

	// LogViolations logs one line per violation found, with Gatekeeper's
	// keys (event_type violation_audited, constraint_*, resource_*), as
	// Gatekeeper always does (--log-audit-violations, default true).
	LogViolations bool

	// EmitEvents emits a Warning Event (reason AuditViolation, source
	// gatekeeper-audit) for each violation found (--emit-audit-events), in
	// Namespace, or with EventsInvolvedNamespace in the namespace of the
	// object (--audit-events-involved-namespace).
	EmitEvents              bool
	EventsInvolvedNamespace bool

	// Namespace is the manager's namespace, where Events go. Not a flag:
	// the manager sets it.
	Namespace string

	// Events emits the Events; Setup creates it with EmitEvents. Not a
	// flag; nil emits none.
	Events *violations.Recorder

	// Workers review objects in parallel (--audit-workers); 0 means
	// GOMAXPROCS.
	Workers int

	// StatusOnChange writes a constraint's status only when its violations
	// or total change, or once its auditTimestamp is StatusRefresh old
	// (--audit-status-on-change), so that a quiet cluster's constraints
	// are not rewritten, and their watchers woken, every run. Off by
	// default: every run writes every audited constraint's status, its
	// auditTimestamp in particular, as Gatekeeper does.
	StatusOnChange bool

	// StatusRefresh bounds how stale status.auditTimestamp may get with
	// StatusOnChange (--audit-status-refresh): an unchanged status is
	// rewritten once its auditTimestamp is older than this. 0 writes only
	// on change.
	StatusRefresh time.Duration

	// Reports, when ReportsPolicyReport (--audit-reports=policyreport),
	// writes every result of each run as PolicyReports, one per namespace
	// and a ClusterPolicyReport (package policyreport). "", the default,
	// writes none, as Gatekeeper.
	Reports string

	// ReportsPass adds to the reports a pass result for each constraint an
	// object matched without violating it (--audit-reports-pass).
	ReportsPass bool

	// ReportsMaxResults bounds the results of one report
	// (--audit-reports-max-results): a namespace with more gets numbered
	// reports. 0 means policyreport.DefaultMaxResults.
	ReportsMaxResults int

	// ReportsConcurrency is how many namespaces' reports are written at
	// once (--audit-reports-concurrency); ReportsQPS rate-limits the
	// report writer's requests (--audit-reports-qps, burst twice that).
	// 0 means the policyreport package's defaults.
	ReportsConcurrency int
	ReportsQPS         float32

	// ReportsSpillDirs are the directories tried, in order, for the file
	// that holds a run's results beyond a few MB until the reports are
	// written; with none writable, they are held in memory. Not a flag:
	// nil means $TMPDIR, then /tmp/audit (the emptyDir Gatekeeper's chart
	// mounts in its audit pod).
	ReportsSpillDirs []string

	// MetricsMaxNamespaces bounds the cardinality of
	// portcullis_audit_violations (--audit-metrics-max-namespaces): its
	// namespace label is set while the violations of a run span at most
	// this many namespaces, else left empty (the counts summed per
	// constraint); 0 never sets it.
	MetricsMaxNamespaces int

	// Excluded, when set, reports whether the Config's spec.match excludes
	// a namespace from the audit (processes "audit" or "*"); its objects
	// are skipped (a Namespace is skipped when its own name is). The
	// manager sets it from its sync of the Config. Not a flag. The
	// --exempt-namespace flags do not skip anything here: as in Gatekeeper,
	// they only exempt from the webhook, and the audit still reviews
	// those namespaces.
	Excluded func(namespace string) bool

	// Ready, when set, gates the first run of the loop: the audit waits
	// until it returns nil, so that an engine still loading templates and
	// constraints does not clear the statuses of the ones it lacks. The
	// manager sets it to its readiness check. Not a flag.
	Ready func() error
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		Interval:        DefaultInterval,
		ChunkSize:       DefaultChunkSize,
		ViolationsLimit: DefaultViolationsLimit,
		Workers:         0,
		LogViolations:   true,
		StatusRefresh:   DefaultStatusRefresh,

		ReportsMaxResults:    policyreport.DefaultMaxResults,
		ReportsConcurrency:   policyreport.DefaultConcurrency,
		ReportsQPS:           policyreport.DefaultQPS,
		MetricsMaxNamespaces: DefaultMetricsMaxNamespaces,
	}
}

// AddFlags binds the audit's own options to flags in fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.Var(flagvalue.NewSeconds(&o.Interval), "audit-interval", "time between audit runs, in whole seconds as in Gatekeeper (60) or as a Go duration (1m30s); 0 disables the audit")
	fs.BoolVar(&o.MatchKindOnly, "audit-match-kind-only", o.MatchKindOnly, "audit only the kinds constraints name in spec.match.kinds")
	fs.Int64Var(&o.ChunkSize, "audit-chunk-size", o.ChunkSize, "objects per List page during the audit; 0 lists each kind at once (memory then grows with the cluster)")
	fs.IntVar(&o.ViolationsLimit, "constraint-violations-limit", o.ViolationsLimit, "violations kept in each constraint's status.violations (status.totalViolations counts all)")
	fs.BoolVar(&o.LogViolations, "log-audit-violations", o.LogViolations, "log every violation the audit finds, as Gatekeeper does (event_type violation_audited, with its constraint_* and resource_* keys); false logs only the audit_started, constraint_audited and audit_finished lines")
	fs.BoolVar(&o.EmitEvents, "emit-audit-events", o.EmitEvents, "emit a Warning Event (reason AuditViolation, source gatekeeper-audit) for every violation the audit finds, in --namespace")
	fs.BoolVar(&o.EventsInvolvedNamespace, "audit-events-involved-namespace", o.EventsInvolvedNamespace, "with --emit-audit-events, emit each Event in the namespace of the object it is about (cluster-scoped objects' in --namespace)")
	fs.IntVar(&o.Workers, "audit-workers", o.Workers, "objects the audit reviews in parallel; 0 means GOMAXPROCS")
	fs.BoolVar(&o.StatusOnChange, "audit-status-on-change", o.StatusOnChange, "write a constraint's status only when its violations change (or per --audit-status-refresh), instead of every run as Gatekeeper does: fewer writes, but status.auditTimestamp then tells the last change, not the last run")
	fs.DurationVar(&o.StatusRefresh, "audit-status-refresh", o.StatusRefresh, "with --audit-status-on-change, rewrite an unchanged constraint status once its auditTimestamp is this old; 0 writes only on change")
	fs.StringVar(&o.Reports, "audit-reports", o.Reports, "write every result of each audit run as reports: policyreport writes a wgpolicyk8s.io/v1alpha2 PolicyReport per namespace and a ClusterPolicyReport (openreports.io/v1alpha1 Reports where those CRDs are served; the PolicyReport CRDs are installed when missing); empty writes none")
	fs.BoolVar(&o.ReportsPass, "audit-reports-pass", o.ReportsPass, "with --audit-reports, add a pass result for each constraint an object matches without violating it")
	fs.IntVar(&o.ReportsMaxResults, "audit-reports-max-results", o.ReportsMaxResults, "results in one report; a namespace with more (or more than 1 MiB of them) gets numbered reports")
	fs.IntVar(&o.ReportsConcurrency, "audit-reports-concurrency", o.ReportsConcurrency, "namespaces whose reports are written at once")
	fs.Float32Var(&o.ReportsQPS, "audit-reports-qps", o.ReportsQPS, "requests per second of the report writer (burst twice that)")
	fs.IntVar(&o.MetricsMaxNamespaces, "audit-metrics-max-namespaces", o.MetricsMaxNamespaces, "portcullis_audit_violations has a namespace label while a run's violations span at most this many namespaces, else the counts are summed per constraint; 0 never splits by namespace")
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if o.Interval < 0 {
		errs = append(errs, fmt.Errorf("--audit-interval must not be negative, got %s", o.Interval))
	}
	if o.ChunkSize < 0 {
		errs = append(errs, fmt.Errorf("--audit-chunk-size must not be negative, got %d", o.ChunkSize))
	}
	if o.ViolationsLimit < 0 {
		errs = append(errs, fmt.Errorf("--constraint-violations-limit must not be negative, got %d", o.ViolationsLimit))
	}
	if o.Workers < 0 {
		errs = append(errs, fmt.Errorf("--audit-workers must not be negative, got %d", o.Workers))
	}
	switch o.Reports {
	case "", ReportsPolicyReport:
	default:
		errs = append(errs, fmt.Errorf("--audit-reports must be %q or empty, got %q", ReportsPolicyReport, o.Reports))
	}
	if o.ReportsPass && o.Reports == "" {
		errs = append(errs, errors.New("--audit-reports-pass needs --audit-reports"))
	}
	if o.ReportsMaxResults < 0 {
		errs = append(errs, fmt.Errorf("--audit-reports-max-results must not be negative, got %d", o.ReportsMaxResults))
	}
	if o.ReportsConcurrency < 0 {
		errs = append(errs, fmt.Errorf("--audit-reports-concurrency must not be negative, got %d", o.ReportsConcurrency))
	}
	if o.ReportsQPS < 0 {
		errs = append(errs, fmt.Errorf("--audit-reports-qps must not be negative, got %g", o.ReportsQPS))
	}
	if o.MetricsMaxNamespaces < 0 {
		errs = append(errs, fmt.Errorf("--audit-metrics-max-namespaces must not be negative, got %d", o.MetricsMaxNamespaces))
	}
	if o.StatusRefresh < 0 {
		errs = append(errs, fmt.Errorf("--audit-status-refresh must not be negative, got %s", o.StatusRefresh))
	}
	return errors.Join(errs...)
}

// workers is Workers with 0 meaning GOMAXPROCS.
func (o *Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// spillDirs are ReportsSpillDirs with nil meaning $TMPDIR, then
// /tmp/audit.
func (o *Options) spillDirs() []string {
	if o.ReportsSpillDirs != nil {
		return o.ReportsSpillDirs
	}
	return []string{os.TempDir(), "/tmp/audit"}
}
