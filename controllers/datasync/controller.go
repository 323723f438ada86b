package datasync

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	syncsetv1alpha1 "github.com/portcullis-dev/portcullis/api/syncset/v1alpha1"
	"github.com/portcullis-dev/portcullis/controllers"
	"github.com/portcullis-dev/portcullis/internal/readiness"
)

// retryUnservedKinds is how often kinds the API server does not serve are
// looked up again, in case their CRD was installed since.
const retryUnservedKinds = 20 * time.Second

// reconciler recomputes the synced kinds from the Config and every
// SyncSet. Every event maps to one request: the set is global.
type reconciler struct {
	client  client.Reader
	config  types.NamespacedName
	syncer  *Syncer
	traces  *Traces
	exclude *atomic.Pointer[Exclusions]
	// changed is called when the namespaces excluded from the webhook
	// change.
	changed func(context.Context)
	tracker *readiness.Tracker
	metrics *metrics

	// listed is set once the kinds to sync at startup are given to the
	// readiness tracker, by the first reconcile (after the caches synced).
	listed bool
	// failing are the kinds that cannot be synced, with the error last
	// logged, so that a lasting error is logged and counted once.
	failing map[schema.GroupVersionKind]string

	// replica is this replica; status writes the Config's status.
	replica controllers.Replica
	status  dynamic.ResourceInterface
}

// +kubebuilder:rbac:groups=config.gatekeeper.sh,resources=configs,verbs=get;list;watch
// +kubebuilder:rbac:groups=config.gatekeeper.sh,resources=configs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=syncset.gatekeeper.sh,resources=syncsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=*,resources=*,verbs=get;list;watch

// Reconcile applies what the Config and the SyncSets ask for.
func (r *reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	log := log.FromContext(ctx)
	cfg := &configv1alpha1.Config{}
	if err := r.client.Get(ctx, r.config, cfg); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("getting Config %s: %w", r.config, err)
		}
		cfg = nil
	}
	sets := &syncsetv1alpha1.SyncSetList{}
	if err := r.client.List(ctx, sets); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing SyncSets: %w", err)
	}
	want := desired(cfg, sets.Items)
	r.traces.set(want.traces)
	old := r.exclude.Swap(&want.exclusions)
	if r.changed != nil && (old == nil || !old.Equal(want.exclusions, configv1alpha1.ProcessWebhook)) {
		r.changed(ctx)
	}
	if !r.listed {
		r.tracker.ExpectData(kindNames(want.kinds))
		r.listed = true
		log.Info("Kinds to sync listed", "kinds", kindNames(want.kinds))
	}
	errs := r.syncer.Apply(want.kinds, want.exclusions)
	unserved := len(errs)
	maps.Copy(errs, want.invalid)
	r.report(ctx, errs, want.listedBy)
	if err := r.writeStatus(ctx, cfg, errs); err != nil {
		return reconcile.Result{}, err
	}
	if unserved > 0 {
		// Their CRDs may be installed later.
		return reconcile.Result{RequeueAfter: retryUnservedKinds}, nil
	}
	return reconcile.Result{}, nil
}

// report logs and counts each kind that newly fails, or fails otherwise,
// and logs those that recovered or are no longer listed.
func (r *reconciler) report(ctx context.Context, errs map[schema.GroupVersionKind]error, listedBy map[schema.GroupVersionKind][]string) {
	log := log.FromContext(ctx)
	gvks := make([]schema.GroupVersionKind, 0, len(errs))
	for gvk := range errs {
		gvks = append(gvks, gvk)
	}
	sort.Slice(gvks, func(i, j int) bool { return kindName(gvks[i]) < kindName(gvks[j]) })
	for _, gvk := range gvks {
		msg := errs[gvk].Error()
		if r.failing[gvk] == msg {
			continue
		}
		r.failing[gvk] = msg
		r.metrics.countError(ReasonInvalidKind)
		log.Error(errs[gvk], "Cannot sync a kind; the other kinds sync", "kind", kindName(gvk), "listedBy", listedBy[gvk])
	}
	for gvk := range r.failing {
		if _, still := errs[gvk]; !still {
			delete(r.failing, gvk)
			log.Info("Kind no longer in error", "kind", kindName(gvk), "listedBy", listedBy[gvk])
		}
	}
	r.metrics.setInvalidKinds(len(r.failing))
}

// writeStatus writes this replica's entry into the Config's status.byPod,
// as Gatekeeper does: its id, the Config's UID, the operations it runs,
// the generation it applied and the kinds it cannot sync, if any.
func (r *reconciler) writeStatus(ctx context.Context, cfg *configv1alpha1.Config, errs map[schema.GroupVersionKind]error) error {
	if cfg == nil || r.status == nil || r.replica.ID == "" || !cfg.DeletionTimestamp.IsZero() {
		return nil
	}
	entry := configv1alpha1.PodStatus{
		ID: r.replica.ID, ConfigUID: cfg.UID, Operations: r.replica.SortedOperations(), ObservedGeneration: cfg.Generation,
	}
	gvks := make([]schema.GroupVersionKind, 0, len(errs))
	for gvk := range errs {
		gvks = append(gvks, gvk)
	}
	sort.Slice(gvks, func(i, j int) bool { return kindName(gvks[i]) < kindName(gvks[j]) })
	for _, gvk := range gvks {
		entry.Errors = append(entry.Errors, configv1alpha1.ConfigError{Type: ReasonInvalidKind, Message: errs[gvk].Error()})
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&entry)
	if err != nil {
		return fmt.Errorf("encoding the Config status: %w", err)
	}
	if _, err := controllers.WriteByPod(ctx, r.status, "Config", cfg.Name, cfg.UID, m); err != nil {
		return fmt.Errorf("writing the status of Config %s/%s: %w", cfg.Namespace, cfg.Name, err)
	}
	return nil
}

// setup registers the reconciler. It runs on every replica, leader or not.
func (r *reconciler) setup(mgr ctrl.Manager) error {
	req := reconcileRequest(r.config)
	all := func(context.Context, client.Object) []reconcile.Request { return []reconcile.Request{req} }
	// The first reconcile lists the kinds to sync for readiness, even when
	// there is neither a Config nor a SyncSet to trigger it.
	kick := source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(req)
		return nil
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("sync").
		Watches(&configv1alpha1.Config{}, handler.EnqueueRequestsFromMapFunc(r.configEvent(req))).
		Watches(&syncsetv1alpha1.SyncSet{}, handler.EnqueueRequestsFromMapFunc(all)).
		WatchesRawSource(kick).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, NeedLeaderElection: new(false)}).
		Complete(r)
}

// configEvent maps events of the Config that counts to the request, and
// logs and ignores the others.
func (r *reconciler) configEvent(req reconcile.Request) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		if o.GetNamespace() == r.config.Namespace && o.GetName() == r.config.Name {
			return []reconcile.Request{req}
		}
		r.syncer.log.Info("Ignoring Config: only the Config named "+configv1alpha1.Name+" in Portcullis's namespace is read",
			"config", klog.KObj(o), "namespace", r.config.Namespace)
		return nil
	}
}

func reconcileRequest(config types.NamespacedName) reconcile.Request {
	return reconcile.Request{NamespacedName: config}
}
