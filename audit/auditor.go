package audit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/portcullis-dev/portcullis/audit/policyreport"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/violations"
)

// The audit's client is not throttled below these, whatever the manager's
// config says: a run makes one request per page and per written status.
const (
	minQPS   = 100
	minBurst = 200
)

// readyPoll is how often the loop checks Options.Ready before its first run.
const readyPoll = time.Second

// FieldManager is the field manager of the audit's status writes.
const FieldManager = "portcullis"

// Reviewer judges objects; *engine.Engine is one. Review must be safe to
// call from many goroutines at once.
type Reviewer interface {
	Review(ctx context.Context, in engine.ReviewInput, enforcementPoint string) (*engine.Response, error)
	// TemplateKinds lists the constraint kinds whose templates are loaded.
	TemplateKinds() []string
}

// Auditor runs audits. Start runs one every Options.Interval; RunOnce runs
// one now. Runs never overlap.
type Auditor struct {
	opts      Options
	reviewer  Reviewer
	dynamic   dynamic.Interface
	rest      rest.Interface // raw List pages of audited kinds
	discovery discovery.DiscoveryInterface
	log       logr.Logger
	// reportWriter writes the reports, with Options.Reports.
	reportWriter *policyreport.Writer

	mu sync.Mutex // held by a run
	// byKind are each constraint's totals per kind from the previous run,
	// kept for the kinds that fail to list in the next.
	byKind map[constraintKey]map[schema.GroupKind]int
}

var (
	_ manager.Runnable               = &Auditor{}
	_ manager.LeaderElectionRunnable = &Auditor{}
)

// +kubebuilder:rbac:groups=*,resources=*,verbs=get;list
// +kubebuilder:rbac:groups=constraints.gatekeeper.sh,resources=*/status,verbs=get;update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Setup adds the audit loop to mgr, to run on the leader only. With
// Options.Interval 0 the audit is disabled and nothing is added. The caller
// fills the options that are not flags: Excluded
// (the Config's exclusions for the audit) and Ready (the manager's
// readiness, so that the first run waits until the engine holds every
// template and constraint rather than clearing the statuses of those it
// does not hold yet). reviewer is the manager's engine, or an
// expansion.Reviewer around it, which also judges what workloads expand
// into, as Gatekeeper's audit does.
func Setup(mgr ctrl.Manager, reviewer Reviewer, opts Options) error {
	log := mgr.GetLogger().WithName("audit")
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("audit options: %w", err)
	}
	if opts.Interval == 0 {
		log.Info("Audit disabled", "auditInterval", opts.Interval)
		return nil
	}
	if opts.EmitEvents && opts.Events == nil {
		rec, err := violations.NewRecorder(mgr.GetConfig(), violations.ComponentAudit, opts.Namespace, opts.EventsInvolvedNamespace)
		if err != nil {
			return err
		}
		if err := mgr.Add(rec); err != nil {
			return fmt.Errorf("adding the audit event recorder: %w", err)
		}
		opts.Events = rec
	}
	a, err := New(mgr.GetConfig(), reviewer, opts, log)
	if err != nil {
		return err
	}
	if err := mgr.Add(a); err != nil {
		return fmt.Errorf("adding the audit to the manager: %w", err)
	}
	return nil
}

// New builds an Auditor that reaches the API server with cfg.
func New(cfg *rest.Config, reviewer Reviewer, opts Options, log logr.Logger) (*Auditor, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("audit options: %w", err)
	}
	c := rest.CopyConfig(cfg)
	if c.QPS >= 0 && c.QPS < minQPS {
		c.QPS, c.Burst = minQPS, max(c.Burst, minBurst)
	}
	// Listing every kind meets deprecated ones (v1 ComponentStatus, v1
	// Endpoints) every run: their warnings are chatter, not news.
	c.WarningHandler, c.WarningHandlerWithContext = nil, warningLogger{log: log}
	dyn, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("creating the audit's dynamic client: %w", err)
	}
	raw, err := rest.UnversionedRESTClientFor(dynamic.ConfigFor(c))
	if err != nil {
		return nil, fmt.Errorf("creating the audit's REST client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("creating the audit's discovery client: %w", err)
	}
	var writer *policyreport.Writer
	if opts.Reports != "" {
		writer, err = policyreport.NewWriter(cfg, policyreport.WriterOptions{
			MaxResults: opts.ReportsMaxResults, Concurrency: opts.ReportsConcurrency, QPS: opts.ReportsQPS,
			FieldManager: FieldManager,
		}, log.WithName("reports"))
		if err != nil {
			return nil, err
		}
	}
	registerMetrics()
	return &Auditor{
		opts:      opts,
		reviewer:  reviewer,
		dynamic:   dyn,
		rest:      raw,
		discovery: disc,
		log:       log,
		byKind:    map[constraintKey]map[schema.GroupKind]int{},

		reportWriter: writer,
	}, nil
}

// NeedLeaderElection makes the loop run on the leader only: the audit is
// the single writer of the constraints' audit status.
func (a *Auditor) NeedLeaderElection() bool { return true }

// Start runs an audit every Options.Interval (from the end of one run to the
// start of the next) until ctx ends, the first once Options.Ready passes. A
// failed run is logged and counted; the loop goes on.
func (a *Auditor) Start(ctx context.Context) error {
	if a.opts.Interval <= 0 {
		return nil
	}
	if a.opts.Ready != nil {
		a.log.Info("Waiting for the policies to load before the first audit")
		err := wait.PollUntilContextCancel(ctx, readyPoll, true, func(context.Context) (bool, error) {
			return a.opts.Ready() == nil, nil
		})
		if err != nil {
			return nil // stopped while waiting
		}
	}
	a.log.Info("Starting audit loop", "interval", a.opts.Interval, "workers", a.opts.workers(),
		"chunkSize", a.opts.ChunkSize, "matchKindOnly", a.opts.MatchKindOnly)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		// The error is in the run's log line and metrics already.
		_, _ = a.RunOnce(ctx)
		timer.Reset(a.opts.Interval)
	}
}

// RunOnce runs one audit now, after any run in progress, and returns its
// report. An error means the run stopped before writing statuses (discovery
// or the Namespace list failed, or ctx ended); failures of single kinds,
// objects or statuses are counted in the report and do not stop the run.
func (a *Auditor) RunOnce(ctx context.Context) (Report, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := newRun(a)
	err := r.do(ctx)
	if r.namespaces != nil {
		r.report.NamespaceErrors = r.namespaces.errors()
	}
	rep := r.report
	rep.End = time.Now()
	a.logRun(&rep, err)
	if err != nil {
		runErrors.Inc()
		return rep, err
	}
	recordRun(&rep)
	audited := make(map[constraintKey]bool, len(rep.Constraints))
	for _, c := range rep.Constraints {
		if c.Skipped == "" {
			audited[constraintKey{Kind: c.Kind, Name: c.Name}] = true
		}
	}
	recordViolationSeries(rep.series, audited, a.opts.MetricsMaxNamespaces, r.namespaces.gone)
	return rep, nil
}

// logRun writes the run's last log line: Gatekeeper's audit_finished, with
// the run's counts.
func (a *Auditor) logRun(rep *Report, err error) {
	kv := []any{
		violations.KeyProcess, violations.ProcessAudit,
		violations.KeyAuditID, auditID(rep.Start),
		"start", rep.Start.UTC().Format(time.RFC3339Nano),
		"end", rep.End.UTC().Format(time.RFC3339Nano),
		"duration", rep.Duration().Round(time.Millisecond).String(),
		"kinds", len(rep.Resources),
		"objectsListed", rep.ObjectsListed,
		"objectsReviewed", rep.ObjectsReviewed,
		"objectsExempt", rep.ObjectsExempt,
		"constraints", len(rep.Constraints),
		"violations", rep.Violations,
		"violationsByAction", rep.ViolationsByAction,
		"statusWrites", rep.StatusWrites,
		"listErrors", rep.ListErrors,
		"reviewErrors", rep.ReviewErrors,
		"namespaceErrors", rep.NamespaceErrors,
		"statusErrors", rep.StatusErrors,
	}
	if a.reportWriter != nil {
		kv = append(kv, "reportAPI", rep.Reports.API.String(), "reportDuration", rep.Reports.Duration.Round(time.Millisecond).String(),
			"reports", rep.Reports.Reports,
			"reportWrites", rep.Reports.Writes, "reportBytes", rep.Reports.Bytes, "reportDeletes", rep.Reports.Deletes,
			"reportErrors", rep.Reports.Errors)
	}
	if err != nil {
		a.log.Error(err, "Audit failed", kv...)
		return
	}
	kv = append(kv, violations.KeyEventType, violations.EventAuditFinished, violations.KeySemantic, true)
	a.log.Info("auditing is complete", kv...)
}

// warningLogger logs the API server's warnings at V(1).
type warningLogger struct{ log logr.Logger }

func (w warningLogger) HandleWarningHeaderWithContext(_ context.Context, code int, _ string, text string) {
	if code == 299 && text != "" {
		w.log.V(1).Info("API server warning", "warning", text)
	}
}

// auditID names a run in the log, after its start, as Gatekeeper does: the
// status.auditTimestamp the run writes.
func auditID(start time.Time) string { return start.UTC().Format(time.RFC3339) }
