package datasync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	"github.com/portcullis-dev/portcullis/internal/readiness"
)

// Sync is the sync of referential data set up in a manager, and what the
// Config tells the other parts of Portcullis. Its methods are safe for
// concurrent use, and on a nil *Sync they answer as if nothing were
// configured.
type Sync struct {
	syncer  *Syncer
	traces  *Traces
	exclude atomic.Pointer[Exclusions]

	mu sync.Mutex
	// onWebhookExclusions are called when the namespaces excluded from
	// the webhook change.
	onWebhookExclusions []func(context.Context)
}

// Setup adds the sync to mgr: a controller that reads the Config named
// "config" in namespace and every SyncSet, and one watch per listed kind
// that keeps the kind's objects in inv (the engine's data.inventory). It
// makes tracker wait for the first sync of every kind listed at startup.
// Nothing runs until mgr starts; the sync runs on every replica.
func Setup(mgr ctrl.Manager, inv Inventory, tracker *readiness.Tracker, namespace string, opts Options) (*Sync, error) {
	if inv == nil {
		return nil, errors.New("sync: no inventory")
	}
	m, err := getMetrics()
	if err != nil {
		return nil, fmt.Errorf("sync: registering metrics: %w", err)
	}
	dyn, err := dynamic.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("sync: creating a dynamic client: %w", err)
	}
	log := mgr.GetLogger().WithName("sync")
	s := &Sync{
		syncer: newSyncer(dyn, mgr.GetRESTMapper(), inv, tracker, transformFunc(opts.KeepManagedFields), log, m),
		traces: &Traces{},
	}
	if err := mgr.Add(s.syncer); err != nil {
		return nil, fmt.Errorf("sync: adding the watches: %w", err)
	}
	r := &reconciler{
		client:  mgr.GetClient(),
		config:  types.NamespacedName{Namespace: namespace, Name: configv1alpha1.Name},
		syncer:  s.syncer,
		traces:  s.traces,
		exclude: &s.exclude,
		changed: s.webhookExclusionsChanged,
		tracker: tracker,
		metrics: m,
		failing: map[schema.GroupVersionKind]string{},
		replica: opts.Replica,
		status:  dyn.Resource(configv1alpha1.GroupVersion.WithResource("configs")).Namespace(namespace),
	}
	if err := r.setup(mgr); err != nil {
		return nil, fmt.Errorf("sync: setting up the Config and SyncSet controller: %w", err)
	}
	tracker.RequireData()
	return s, nil
}

// Ready reports whether every kind now listed has completed its first
// sync. /readyz uses the readiness tracker instead, which waits only for
// the kinds listed at startup and then stays ready.
func (s *Sync) Ready() error {
	if s == nil {
		return nil
	}
	return s.syncer.Ready()
}

// Traces are the Config's spec.validation.traces, for the webhook.
func (s *Sync) Traces() *Traces {
	if s == nil {
		return nil
	}
	return s.traces
}

// Excludes reports whether the Config's spec.match excludes namespace from
// process (audit, webhook, sync).
func (s *Sync) Excludes(process configv1alpha1.Process, namespace string) bool {
	if s == nil {
		return false
	}
	ex := s.exclude.Load()
	return ex != nil && ex.Excludes(process, namespace)
}

// ExcludedNamespaces lists the wildcards of the namespaces the Config's
// spec.match excludes from process, sorted.
func (s *Sync) ExcludedNamespaces(process configv1alpha1.Process) []string {
	if s == nil {
		return nil
	}
	ex := s.exclude.Load()
	if ex == nil {
		return nil
	}
	return ex.Namespaces(process)
}

// OnWebhookExclusionsChange calls fn, from the Config's reconcile, each
// time the namespaces the Config excludes from the webhook change (and
// once when the Config is first read). Call it before the manager starts.
func (s *Sync) OnWebhookExclusionsChange(fn func(context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onWebhookExclusions = append(s.onWebhookExclusions, fn)
}

func (s *Sync) webhookExclusionsChanged(ctx context.Context) {
	s.mu.Lock()
	fns := slices.Clone(s.onWebhookExclusions)
	s.mu.Unlock()
	for _, fn := range fns {
		fn(ctx)
	}
}

// Wanted is the number of distinct kinds the Config and the SyncSets ask
// for, whether or not the API server serves them.
func (s *Sync) Wanted() int {
	if s == nil {
		return 0
	}
	return s.syncer.Wanted()
}

// Kinds lists the kinds synced or syncing, sorted.
func (s *Sync) Kinds() []schema.GroupVersionKind {
	if s == nil {
		return nil
	}
	return s.syncer.Kinds()
}

// Count is the number of objects of a kind in the inventory, and whether
// the kind has completed its first sync.
func (s *Sync) Count(gvk schema.GroupVersionKind) (objects int, synced bool) {
	if s == nil {
		return 0, false
	}
	return s.syncer.Count(gvk)
}
