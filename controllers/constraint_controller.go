package controllers

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/readiness"
	"github.com/portcullis-dev/portcullis/vap"
)

// ConstraintReconciler adds, updates and removes constraints of every kind
// in the engine, and writes its own status.byPod entry on each. Its events
// come from the Watches the TemplateReconciler starts.
type ConstraintReconciler struct {
	Engine  *engine.Engine
	Watches *Watches
	Kinds   *Kinds
	// Dynamic writes constraint status and reads constraints after a
	// conflict.
	Dynamic dynamic.Interface
	Tracker *readiness.Tracker
	// Replica identifies this replica in status.byPod.
	Replica Replica
	// VAP generates the ValidatingAdmissionPolicyBinding of each
	// constraint of a template with CEL, on replicas with
	// --operation=generate; nil on the others.
	VAP *vap.Reconciler

	metrics *controllerMetrics
	tally   metricTally
}

// SetupWithManager registers the reconciler. Like the template reconciler,
// it runs on every replica.
func (r *ConstraintReconciler) SetupWithManager(mgr ctrl.Manager) error {
	m, err := newControllerMetrics()
	if err != nil {
		return err
	}
	r.metrics = m
	base := mgr.GetLogger().WithValues("controller", "constraint")
	b := builder.TypedControllerManagedBy[ConstraintRequest](mgr).
		Named("constraint").
		WatchesRawSource(r.Watches.Source())
	c, err := b.WithOptions(controller.TypedOptions[ConstraintRequest]{
		MaxConcurrentReconciles: 4,
		NeedLeaderElection:      new(false),
		LogConstructor: func(req *ConstraintRequest) logr.Logger {
			if req == nil {
				return base
			}
			return base.WithValues("kind", req.Kind, "name", req.Name)
		},
	}).
		Build(r)
	if err != nil || r.VAP == nil {
		return err
	}
	// A binding changed or deleted by others is put back.
	return watchWhenServed(mgr, r.VAP, "ValidatingAdmissionPolicyBindings", func() error {
		return c.Watch(source.TypedKind(mgr.GetCache(), &admissionregistrationv1.ValidatingAdmissionPolicyBinding{},
			handler.TypedEnqueueRequestsFromMapFunc(constraintForBinding)))
	})
}

// +kubebuilder:rbac:groups=constraints.gatekeeper.sh,resources=*,verbs=get;list;watch
// +kubebuilder:rbac:groups=constraints.gatekeeper.sh,resources=*/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=constraints.gatekeeper.sh,resources=*/finalizers,verbs=update

// Reconcile puts one constraint into the engine, or takes it out.
func (r *ConstraintReconciler) Reconcile(ctx context.Context, req ConstraintRequest) (reconcile.Result, error) {
	log := log.FromContext(ctx)
	u, found, err := r.Watches.Get(req.Kind, req.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !found || !u.GetDeletionTimestamp().IsZero() {
		if err := r.Engine.RemoveConstraint(ctx, constraintStub(req)); err != nil {
			return reconcile.Result{}, err
		}
		r.metrics.reportConstraint(&r.tally, req.Kind+"/"+req.Name, nil, false)
		log.V(1).Info("Constraint removed from the engine")
		// Unless its kind is listed, the constraint may exist: the
		// template's delete path removes the bindings of a kind gone.
		if r.VAP != nil && r.Watches.Synced(req.Kind) {
			if err := r.VAP.DeleteBinding(ctx, req.Kind, req.Name); err != nil {
				return reconcile.Result{}, err
			}
		}
		r.Tracker.ConstraintDone(req.Kind, req.Name)
		return reconcile.Result{}, nil
	}

	res := r.load(ctx, u)
	r.reportMetrics(req, u, res)
	var result reconcile.Result
	var vapErr error
	if res.enforced && r.VAP != nil {
		br, err := r.VAP.SyncBinding(ctx, u)
		res.vap, result.RequeueAfter, vapErr = br.Status, br.RequeueAfter, err
	}
	wrote, err := r.writeConstraintStatus(ctx, u, res)
	if err != nil {
		return reconcile.Result{}, err
	}
	if wrote {
		if len(res.errors) > 0 {
			log.Info("Constraint not enforced", "code", res.errors[0].Code, "error", res.errors[0].Message)
		} else {
			log.Info("Constraint enforced", "generation", res.generation)
		}
	}
	if len(res.errors) > 0 && r.Tracker.ConstraintFailed(req.Kind, req.Name) {
		// --readiness-retries: readiness waits while it is retried.
		return reconcile.Result{RequeueAfter: ReadinessRetryDelay}, nil
	}
	r.Tracker.ConstraintDone(req.Kind, req.Name)
	if vapErr != nil {
		return reconcile.Result{}, fmt.Errorf("generating the ValidatingAdmissionPolicyBinding: %w", vapErr)
	}
	return result, nil
}

// constraintForBinding maps a binding to the constraint that controls it.
func constraintForBinding(_ context.Context, b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) []ConstraintRequest {
	if kind, name, ok := vap.BindingOwner(b); ok {
		return []ConstraintRequest{{Kind: kind, Name: name}}
	}
	return nil
}

// constraintResult is what this replica found for one generation of a
// constraint.
type constraintResult struct {
	uid        types.UID
	generation int64
	enforced   bool
	errors     []StatusError
	// vap is the vap.k8s.io enforcement point's status, nil for none.
	vap *vap.EnforcementPointStatus
}

// load adds the constraint to the engine. A constraint the engine refuses
// is taken out of it, so that the engine enforces exactly the constraints
// whose status says enforced.
func (r *ConstraintReconciler) load(ctx context.Context, u *unstructured.Unstructured) constraintResult {
	res := constraintResult{uid: u.GetUID(), generation: u.GetGeneration()}
	fail := func(code string, err error) constraintResult {
		res.errors = append(res.errors, StatusError{Code: code, Message: err.Error()})
		if rerr := r.Engine.RemoveConstraint(ctx, u); rerr != nil {
			log.FromContext(ctx).Error(rerr, "Removing a refused constraint from the engine")
		}
		return res
	}
	if !r.Kinds.Loaded(u.GetKind()) {
		return fail(CodeTemplateNotLoaded, fmt.Errorf("no ConstraintTemplate of kind %s is loaded: the template is gone, or its status says why it does not load", u.GetKind()))
	}
	if err := engine.ValidateEnforcementAction(u); err != nil {
		return fail(CodeEnforcementAction, err)
	}
	if err := r.Engine.AddConstraint(ctx, u); err != nil {
		return fail(CodeConstraint, err)
	}
	res.enforced = true
	return res
}

func constraintStub(req ConstraintRequest) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(ConstraintGVK(req.Kind))
	u.SetName(req.Name)
	return u
}

// reportMetrics counts the constraint in gatekeeper_constraints: active
// when enforced, error otherwise. As in Gatekeeper, a constraint whose
// enforcement action is invalid is not counted.
func (r *ConstraintReconciler) reportMetrics(req ConstraintRequest, u *unstructured.Unstructured, res constraintResult) {
	key := req.Kind + "/" + req.Name
	if len(res.errors) > 0 && res.errors[0].Code == CodeEnforcementAction {
		r.metrics.reportConstraint(&r.tally, key, nil, false)
		return
	}
	r.metrics.reportConstraint(&r.tally, key, u, res.enforced)
}
