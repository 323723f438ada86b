package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/portcullis-dev/portcullis/api/expansion/v1alpha1"
	"github.com/portcullis-dev/portcullis/api/expansion/v1beta1"
	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/metrics"
	"github.com/portcullis-dev/portcullis/internal/readiness"
)

// ExpansionTemplateResource is the resource of ExpansionTemplates (singular,
// as in Gatekeeper), at the version the reconciler reads.
var ExpansionTemplateResource = v1beta1.GroupVersion.WithResource("expansiontemplate")

// ExpansionReconciler loads ExpansionTemplates into an expansion.System and
// writes this replica's status.byPod entry into each, as Gatekeeper's
// expansion controller does: its id, the template's UID, the operations,
// the generation loaded, and the error that kept the template out (one
// that does not validate, or "template forms expansion cycle"). When the
// templates in a cycle change, the other templates whose state changed
// are reconciled again, so that their status follows.
type ExpansionReconciler struct {
	// Client reads ExpansionTemplates through the manager's cache.
	Client client.Reader
	// Dynamic writes their status.
	Dynamic dynamic.Interface
	System  *expansion.System
	Tracker *readiness.Tracker
	Replica Replica

	events  chan event.GenericEvent
	metrics *expansionMetrics
	tally   metricTally
}

// +kubebuilder:rbac:groups=expansion.gatekeeper.sh,resources=expansiontemplate,verbs=get;list;watch
// +kubebuilder:rbac:groups=expansion.gatekeeper.sh,resources=expansiontemplate/status,verbs=get;update;patch

// SetupWithManager registers the reconciler, and the listing of the
// templates that exist at startup for readiness. It runs on every replica,
// leader or not: each replica expands with its own System.
func (r *ExpansionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	m, err := newExpansionMetrics()
	if err != nil {
		return err
	}
	r.metrics = m
	r.events = make(chan event.GenericEvent, 64)
	r.Tracker.RequireExpansions()
	if err := mgr.Add(&readiness.Lister{
		Reader: mgr.GetAPIReader(), Lists: []schema.GroupVersionKind{v1beta1.GroupVersion.WithKind("ExpansionTemplateList")},
		What: "ExpansionTemplates", Expect: r.Tracker.ExpectExpansions,
	}); err != nil {
		return fmt.Errorf("adding the ExpansionTemplate lister: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("expansiontemplate").
		For(&v1beta1.ExpansionTemplate{}).
		WatchesRawSource(source.Channel(r.events, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, NeedLeaderElection: new(false)}).
		Complete(r)
}

// Reconcile loads one template into the System, or removes it when it is
// gone.
func (r *ExpansionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := log.FromContext(ctx)
	et := &v1beta1.ExpansionTemplate{}
	err := r.Client.Get(ctx, req.NamespacedName, et)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("getting ExpansionTemplate %s: %w", req.Name, err)
	}
	before := r.System.Conflicts()
	if apierrors.IsNotFound(err) || !et.DeletionTimestamp.IsZero() {
		r.System.Remove(req.Name)
		r.metrics.report(&r.tally, req.Name, false, true)
		r.Tracker.ExpansionDone(req.Name)
		r.requeueChanged(ctx, before)
		log.V(1).Info("Removed ExpansionTemplate", "expansionTemplate", req.Name)
		return ctrl.Result{}, nil
	}
	upsertErr := r.System.Upsert(expansion.FromV1Beta1(et))
	if upsertErr != nil {
		log.Error(upsertErr, "ExpansionTemplate not used", "expansionTemplate", et.Name)
	} else {
		log.V(1).Info("Loaded ExpansionTemplate", "expansionTemplate", et.Name, "generation", et.Generation)
	}
	r.metrics.report(&r.tally, et.Name, upsertErr == nil, false)
	r.Tracker.ExpansionDone(et.Name)
	r.requeueChanged(ctx, before)
	return ctrl.Result{}, r.writeStatus(ctx, et, upsertErr)
}

// requeueChanged reconciles again the templates that entered or left a
// cycle since before, other templates' changes having changed their state.
func (r *ExpansionReconciler) requeueChanged(ctx context.Context, before []string) {
	after := r.System.Conflicts()
	for _, name := range symmetricDifference(before, after) {
		u := &v1beta1.ExpansionTemplate{}
		u.Name = name
		select {
		case r.events <- event.GenericEvent{Object: u}:
		case <-ctx.Done():
			return
		}
	}
}

func symmetricDifference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}

// writeStatus writes this replica's byPod entry, with upsertErr if the
// template is not used.
func (r *ExpansionReconciler) writeStatus(ctx context.Context, et *v1beta1.ExpansionTemplate, upsertErr error) error {
	if r.Dynamic == nil || r.Replica.ID == "" {
		return nil
	}
	entry := v1alpha1.ExpansionTemplatePodStatusStatus{
		ID: r.Replica.ID, TemplateUID: et.UID, Operations: r.Replica.SortedOperations(), ObservedGeneration: et.Generation,
	}
	if upsertErr != nil {
		entry.Errors = []*v1alpha1.ExpansionTemplateError{{Message: upsertErr.Error()}}
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&entry)
	if err != nil {
		return fmt.Errorf("encoding the ExpansionTemplate status: %w", err)
	}
	res := r.Dynamic.Resource(ExpansionTemplateResource)
	if _, err := WriteByPod(ctx, res, "ExpansionTemplate", et.Name, et.UID, m); err != nil {
		return fmt.Errorf("writing the status of ExpansionTemplate %s: %w", et.Name, err)
	}
	return nil
}

// expansionMetrics is Gatekeeper's gatekeeper_expansion_templates gauge.
type expansionMetrics struct {
	templates *prometheus.GaugeVec
}

var (
	expansionMetricsOnce sync.Once
	sharedExpansion      *expansionMetrics
	expansionMetricsErr  error
)

func newExpansionMetrics() (*expansionMetrics, error) {
	expansionMetricsOnce.Do(func() {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatekeeper_expansion_templates",
			Help: "Number of observed expansion templates, by status (active, error)",
		}, []string{"status"})
		if g, expansionMetricsErr = metrics.Register(ctrlmetrics.Registry, g); expansionMetricsErr != nil {
			return
		}
		for _, s := range metricStatuses {
			g.WithLabelValues(s)
		}
		sharedExpansion = &expansionMetrics{templates: g}
	})
	return sharedExpansion, expansionMetricsErr
}

// report records a template's status (ok false: error); gone forgets it.
func (m *expansionMetrics) report(t *metricTally, name string, ok, gone bool) {
	if m == nil {
		return
	}
	reportStatus(m.templates, t, name, ok, gone)
}
