package manager

import (
	"context"
	"fmt"
	"slices"
	"time"

	frameworksapis "github.com/open-policy-agent/frameworks/constraint/pkg/apis"
	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	expansionv1alpha1 "github.com/portcullis-dev/portcullis/api/expansion/v1alpha1"
	expansionv1beta1 "github.com/portcullis-dev/portcullis/api/expansion/v1beta1"
	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	mutationsv1alpha1 "github.com/portcullis-dev/portcullis/api/mutations/v1alpha1"
	mutationsv1beta1 "github.com/portcullis-dev/portcullis/api/mutations/v1beta1"
	syncsetv1alpha1 "github.com/portcullis-dev/portcullis/api/syncset/v1alpha1"
	"github.com/portcullis-dev/portcullis/config"
	"github.com/portcullis-dev/portcullis/controllers"
	"github.com/portcullis-dev/portcullis/controllers/datasync"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/readiness"
	"github.com/portcullis-dev/portcullis/mutation"
)

// LeaderElectionID names the leader election Lease.
const LeaderElectionID = "portcullis-manager.gatekeeper.sh"

// Manager is `portcullis manager`: a controller-runtime manager holding the
// policy engine, the template and constraint reconcilers that fill it, the
// /healthz and /readyz checks and the metrics endpoint. The webhook and the
// audit add themselves to it through Manager().
type Manager struct {
	opts    Options
	cfg     *rest.Config
	mgr     ctrl.Manager
	engine  *engine.Engine
	tracker *readiness.Tracker
	watches *controllers.Watches
	sync    *datasync.Sync
	// heartbeat renews this replica's Lease (nil: off).
	heartbeat *controllers.Heartbeat
	// expansion holds the ExpansionTemplates (nil with
	// --enable-generator-resource-expansion=false); reviewer is the engine
	// with it, which the webhook and the audit judge with.
	expansion *expansion.System
	reviewer  *expansion.Reviewer
	// mutation holds the mutators (nil: no mutation operation).
	mutation *mutation.System
}

// NewScheme returns the scheme of the manager's client: client-go's types,
// apiextensions/v1, every version of ConstraintTemplate, Config, SyncSet,
// ExpansionTemplate and the mutators.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, frameworksapis.AddToScheme,
		configv1alpha1.AddToScheme, syncsetv1alpha1.AddToScheme,
		expansionv1alpha1.AddToScheme, expansionv1beta1.AddToScheme,
		mutationsv1.AddToScheme, mutationsv1beta1.AddToScheme, mutationsv1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building scheme: %w", err)
		}
	}
	return s, nil
}

// New builds the manager from completed Options. Nothing runs until Start.
func New(cfg *rest.Config, opts Options) (*Manager, error) {
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(opts.Engine)
	if err != nil {
		return nil, fmt.Errorf("creating the engine: %w", err)
	}
	if err := registerEngineMetrics(eng); err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsBindAddress},
		HealthProbeBindAddress:        opts.HealthProbeBindAddress,
		LeaderElection:                opts.LeaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only constraint CRDs: the template reconciler owns them.
			&apiextensionsv1.CustomResourceDefinition{}: {
				Label: labels.SelectorFromSet(labels.Set{controllers.ConstraintCRDLabel: "yes"}),
			},
		}},
		// Tests and `portcullis dev` run several managers in one process.
		Controller: ctrlconfig.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the controller manager: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a dynamic client: %w", err)
	}
	m := &Manager{
		opts:    opts,
		cfg:     cfg,
		mgr:     mgr,
		engine:  eng,
		tracker: newTracker(opts.ReadinessRetries),
		watches: controllers.NewWatches(dyn, mgr.GetLogger().WithName("watches")),
	}
	// Before expansion: the mutators apply to resultants.
	if err := m.setupMutation(dyn); err != nil {
		return nil, err
	}
	if opts.EnableGeneratorResourceExpansion {
		m.expansion = expansion.NewSystem(m.expansionMutator())
	}
	m.reviewer = &expansion.Reviewer{Engine: eng, System: m.expansion}
	if err := m.setupChecks(); err != nil {
		return nil, err
	}
	if err := m.setupReconcilers(dyn); err != nil {
		return nil, err
	}
	if err := m.setupWebhook(); err != nil {
		return nil, err
	}
	if err := m.setupAudit(); err != nil {
		return nil, err
	}
	if opts.EnablePprof {
		if err := mgr.Add(newPprofServer(opts.PprofPort)); err != nil {
			return nil, fmt.Errorf("adding the pprof server: %w", err)
		}
	}
	return m, nil
}

func (m *Manager) setupChecks() error {
	if err := m.mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	if err := m.mgr.AddReadyzCheck("policies-loaded", m.tracker.Check); err != nil {
		return fmt.Errorf("adding the readiness check: %w", err)
	}
	if err := m.mgr.Add(&readiness.Lister{
		Reader: m.mgr.GetAPIReader(), Lists: []schema.GroupVersionKind{templatesv1.SchemeGroupVersion.WithKind("ConstraintTemplateList")},
		What: "ConstraintTemplates", Expect: m.tracker.ExpectTemplates,
	}); err != nil {
		return fmt.Errorf("adding the template lister: %w", err)
	}
	return nil
}

func (m *Manager) setupReconcilers(dyn dynamic.Interface) error {
	if err := m.mgr.Add(m.watches); err != nil {
		return fmt.Errorf("adding the constraint watches: %w", err)
	}
	kinds := controllers.NewKinds()
	vr, err := m.newVAP()
	if err != nil {
		return err
	}
	tr := &controllers.TemplateReconciler{
		Client:    m.mgr.GetClient(),
		APIReader: m.mgr.GetAPIReader(),
		Scheme:    m.mgr.GetScheme(),
		Engine:    m.engine,
		Watches:   m.watches,
		Kinds:     kinds,
		Tracker:   m.tracker,
		Replica:   m.replica(),
		LeaveCRDs: !m.opts.generates(),
		VAP:       vr,
	}
	if err := tr.SetupWithManager(m.mgr); err != nil {
		return fmt.Errorf("setting up the ConstraintTemplate controller: %w", err)
	}
	cr := &controllers.ConstraintReconciler{
		Engine:  m.engine,
		Watches: m.watches,
		Kinds:   kinds,
		Dynamic: dyn,
		Tracker: m.tracker,
		Replica: m.replica(),
		VAP:     vr,
	}
	if err := cr.SetupWithManager(m.mgr); err != nil {
		return fmt.Errorf("setting up the constraint controller: %w", err)
	}
	if m.expansion != nil {
		er := &controllers.ExpansionReconciler{
			Client: m.mgr.GetClient(), Dynamic: dyn, System: m.expansion, Tracker: m.tracker, Replica: m.replica(),
		}
		if err := er.SetupWithManager(m.mgr); err != nil {
			return fmt.Errorf("setting up the ExpansionTemplate controller: %w", err)
		}
	}
	syncOpts := m.opts.Sync
	syncOpts.Replica = m.replica()
	ds, err := datasync.Setup(m.mgr, m.engine, m.tracker, m.opts.Namespace, syncOpts)
	if err != nil {
		return fmt.Errorf("setting up the sync of referential data: %w", err)
	}
	m.sync = ds
	if vr != nil {
		ds.OnWebhookExclusionsChange(vr.Rescope)
	}
	if err := registerWatchMetrics(m.watches, ds); err != nil {
		return err
	}
	return m.setupHeartbeat(dyn)
}

// setupHeartbeat adds this replica's heartbeat and, with
// --operation=status, the pruner of the status entries of replicas gone.
func (m *Manager) setupHeartbeat(dyn dynamic.Interface) error {
	d := m.opts.HeartbeatDuration
	if d <= 0 {
		return nil
	}
	m.heartbeat = &controllers.Heartbeat{
		Client: m.mgr.GetClient(), Reader: m.mgr.GetAPIReader(), Namespace: m.opts.Namespace,
		ID: m.opts.PodID, Duration: d, Log: m.mgr.GetLogger().WithName("heartbeat"),
	}
	if err := m.mgr.Add(m.heartbeat); err != nil {
		return fmt.Errorf("adding the heartbeat: %w", err)
	}
	policies := slices.Contains(m.opts.Operations, OperationStatus)
	mutators := m.opts.mutationEnabled() && slices.Contains(m.opts.Operations, OperationMutationStatus)
	if !policies && !mutators {
		return nil
	}
	p := &controllers.Pruner{
		Client: m.mgr.GetClient(), Reader: m.mgr.GetAPIReader(), Dynamic: dyn, Watches: m.watches,
		Namespace: m.opts.Namespace, Self: m.opts.PodID, Interval: d / 4, Log: m.mgr.GetLogger().WithName("status-pruner"),
		Policies: policies, Mutators: mutators,
	}
	if err := m.mgr.Add(p); err != nil {
		return fmt.Errorf("adding the status pruner: %w", err)
	}
	return nil
}

// replica identifies this replica in status.byPod: its pod ID and the
// operations it runs.
func (m *Manager) replica() controllers.Replica {
	ops := make([]string, len(m.opts.Operations))
	for i, op := range m.opts.Operations {
		ops[i] = string(op)
	}
	return controllers.Replica{ID: m.opts.PodID, Operations: ops}
}

// Start installs the CRDs if asked to, then runs the manager until ctx ends.
func (m *Manager) Start(ctx context.Context) error {
	log := log.FromContext(ctx)
	if m.opts.InstallCRDs {
		c, err := client.New(m.cfg, client.Options{Scheme: m.mgr.GetScheme()})
		if err != nil {
			return fmt.Errorf("creating a client: %w", err)
		}
		if err := InstallCRDs(ctx, c, config.CRDs); err != nil {
			return err
		}
		log.Info("Installed CRDs")
	}
	for _, f := range m.opts.unsupported {
		log.Info("Gatekeeper flag accepted but not supported: it has no effect", "flag", f.Flag, "value", f.Value, "reason", f.Reason)
	}
	ops := m.replica().Operations
	log.Info("Starting manager", "podID", m.opts.PodID, "namespace", m.opts.Namespace, "leaderElection", m.opts.LeaderElect,
		"operations", ops, "webhook", m.opts.Webhook.Enabled, "auditInterval", m.opts.Audit.Interval.String(),
		"generatorResourceExpansion", m.opts.EnableGeneratorResourceExpansion)
	if m.heartbeat != nil {
		// Before any status entry of this replica: no pruner may take it
		// for gone.
		if err := m.heartbeat.Beat(ctx); err != nil {
			log.Error(err, "Creating the replica heartbeat Lease; other replicas may take this one for gone and remove its status entries")
		}
	}
	runCtx, cancel := delayedCancel(ctx, m.opts.ShutdownDelay)
	defer cancel()
	if err := m.mgr.Start(runCtx); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	return nil
}

// delayedCancel returns a context that ends delay after ctx does (at once
// with no delay), keeping ctx's values: --shutdown-delay.
func delayedCancel(ctx context.Context, delay time.Duration) (context.Context, context.CancelFunc) {
	if delay <= 0 {
		return ctx, func() {}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-runCtx.Done():
			return
		case <-ctx.Done():
		}
		log.FromContext(ctx).Info("Stopping after --shutdown-delay", "delay", delay.String())
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-runCtx.Done():
		}
		cancel()
	}()
	return runCtx, cancel
}

// newTracker is the readiness tracker, with --readiness-retries.
func newTracker(retries int) *readiness.Tracker {
	t := readiness.NewTracker()
	t.SetRetries(retries)
	return t
}

// Manager is the controller-runtime manager, for runnables to add to it.
func (m *Manager) Manager() ctrl.Manager { return m.mgr }

// Engine is the policy engine the controllers fill.
func (m *Manager) Engine() *engine.Engine { return m.engine }

// Reviewer is the engine with the ExpansionTemplates: what the webhook and
// the audit judge with.
func (m *Manager) Reviewer() *expansion.Reviewer { return m.reviewer }

// Expansion is the expansion system the ExpansionTemplate controller
// fills; nil with --enable-generator-resource-expansion=false.
func (m *Manager) Expansion() *expansion.System { return m.expansion }

// Ready reports whether every template and constraint that existed at
// startup is loaded, as /readyz does.
func (m *Manager) Ready() error { return m.tracker.Check(nil) }

// Watches are the informers of the constraint kinds.
func (m *Manager) Watches() *controllers.Watches { return m.watches }

// Sync is the sync of referential data: its readiness, and the Config's
// traces and namespace exclusions for the webhook and the audit.
func (m *Manager) Sync() *datasync.Sync { return m.sync }
