package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/engine/celdriver"
	"github.com/portcullis-dev/portcullis/internal/readiness"
	"github.com/portcullis-dev/portcullis/vap"
)

const (
	// establishedPoll is how often a template whose CRD is not yet
	// Established is looked at again, in case the CRD's own update event is
	// missed.
	establishedPoll = 5 * time.Second
	// watchSyncTimeout bounds the wait for a new constraint watch to list
	// its kind; the reconcile is retried after it.
	watchSyncTimeout = 30 * time.Second
)

// TemplateReconciler compiles ConstraintTemplates into the engine, creates
// or updates their constraint CRDs and, once a CRD is Established, starts
// the watch that feeds the ConstraintReconciler. It writes the template's
// status.created, its own status.byPod entry and the Ready condition. When
// a template goes, its watch stops, the engine drops it, and its CRD is
// deleted (see reconcileDelete).
type TemplateReconciler struct {
	// Client reads through the manager's cache and writes.
	Client client.Client
	// APIReader reads from the API server: status before writing it, and
	// templates before deleting a CRD they may still own.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Engine    *engine.Engine
	Watches   *Watches
	Kinds     *Kinds
	Tracker   *readiness.Tracker
	// Replica identifies this replica in status.byPod.
	Replica Replica
	// LeaveCRDs leaves the constraint CRDs to other replicas, as a
	// Gatekeeper pod without --operation=generate does: this one waits for
	// a template's CRD to exist and never creates, updates or deletes one.
	LeaveCRDs bool
	// VAP generates the ValidatingAdmissionPolicy of each template with
	// CEL, on replicas with --operation=generate; nil on the others.
	VAP *vap.Reconciler

	mu    sync.Mutex
	known map[string]*knownTemplate // by template name

	metrics *controllerMetrics
	tally   metricTally
	// celTally holds the loaded templates with CEL code.
	celTally metricTally
}

// knownTemplate is what this replica tracks of a template besides what
// its engine holds (Engine.Template): the template's identity and kind,
// and its last generation that did not compile.
type knownTemplate struct {
	uid  types.UID
	kind string
	// failed is the last generation that did not compile, and why, so
	// that it is not compiled again on every event.
	failed    int64
	failedErr error
}

// ReadinessRetryDelay is the time between the retries of a template or
// constraint that failed to load, while readiness waits for it
// (--readiness-retries).
const ReadinessRetryDelay = time.Second

// SetupWithManager registers the reconciler. It runs on every replica,
// leader or not: each replica serves from its own engine.
func (r *TemplateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.known = map[string]*knownTemplate{}
	m, err := newControllerMetrics()
	if err != nil {
		return err
	}
	r.metrics = m
	b := ctrl.NewControllerManagedBy(mgr).
		Named("constrainttemplate").
		For(&templatesv1.ConstraintTemplate{}).
		// Every constraint CRD maps to the template of its name, whether
		// the template owns it or it was left without one.
		Watches(&apiextensionsv1.CustomResourceDefinition{}, handler.EnqueueRequestsFromMapFunc(templateForCRD)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4, NeedLeaderElection: new(false)})
	if r.VAP == nil {
		return b.Complete(r)
	}
	// A change of what the webhook judges (the Config's exclusions)
	// rescopes the policies.
	c, err := b.WatchesRawSource(source.Channel(r.VAP.Events(), &handler.EnqueueRequestForObject{})).Build(r)
	if err != nil {
		return err
	}
	// A policy changed or deleted by others is put back; a change of the
	// webhook's configuration rescopes them.
	return watchWhenServed(mgr, r.VAP, "ValidatingAdmissionPolicies", func() error {
		if err := c.Watch(source.Kind[client.Object](mgr.GetCache(), &admissionregistrationv1.ValidatingAdmissionPolicy{},
			handler.EnqueueRequestsFromMapFunc(templateForPolicy))); err != nil {
			return err
		}
		return c.Watch(source.Kind[client.Object](mgr.GetCache(), &admissionregistrationv1.ValidatingWebhookConfiguration{},
			handler.EnqueueRequestsFromMapFunc(r.VAP.WebhookConfigurationChanged)))
	})
}

// templateForPolicy maps a policy to the template that controls it.
func templateForPolicy(_ context.Context, o client.Object) []reconcile.Request {
	if name, ok := vap.PolicyOwner(o); ok {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
	}
	return nil
}

// +kubebuilder:rbac:groups=templates.gatekeeper.sh,resources=constrainttemplates,verbs=get;list;watch
// +kubebuilder:rbac:groups=templates.gatekeeper.sh,resources=constrainttemplates/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=templates.gatekeeper.sh,resources=constrainttemplates/finalizers,verbs=update
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingadmissionpolicies;validatingadmissionpolicybindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch

// Reconcile loads one template, or unloads it when it is gone.
func (r *TemplateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := log.FromContext(ctx)
	ct := &templatesv1.ConstraintTemplate{}
	if err := r.Client.Get(ctx, req.NamespacedName, ct); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("getting ConstraintTemplate %s: %w", req.Name, err)
		}
		r.metrics.reportTemplate(&r.tally, req.Name, false, true)
		return ctrl.Result{}, r.reconcileDelete(ctx, req.Name)
	}
	if !ct.DeletionTimestamp.IsZero() {
		r.metrics.reportTemplate(&r.tally, req.Name, false, true)
		return ctrl.Result{}, r.reconcileDelete(ctx, req.Name)
	}

	res, pending, err := r.reconcileTemplate(ctx, ct)
	if pending {
		// Not done yet, and nothing to report: no status write.
		if err != nil {
			return ctrl.Result{}, err
		}
		if res.crdLeft {
			// Compiled, and no constraint of the kind can exist yet: do
			// not hold readiness on a CRD another replica is to create.
			r.Tracker.TemplateDone(ct.Name)
			log.V(1).Info("Waiting for another replica to create the constraint CRD", "crd", res.crdName)
		} else {
			log.V(1).Info("Waiting for the constraint CRD to be established", "crd", res.crdName)
		}
		return ctrl.Result{RequeueAfter: establishedPoll}, nil
	}
	r.metrics.reportTemplate(&r.tally, ct.Name, len(res.errors) == 0, false)
	wrote, werr := r.writeTemplateStatus(ctx, ct.Name, ct.UID, res)
	if werr != nil {
		return ctrl.Result{}, werr
	}
	if wrote {
		log.V(1).Info("Wrote status", "errors", len(res.errors))
	}
	if len(res.errors) > 0 {
		log.Info("ConstraintTemplate not loaded", "code", res.errors[0].Code, "error", res.errors[0].Message)
		if r.Tracker.TemplateFailed(ct.Name) {
			// --readiness-retries: readiness waits while it is retried.
			if err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{RequeueAfter: ReadinessRetryDelay}, nil
		}
	}
	r.Tracker.TemplateDone(ct.Name)
	// err is transient (an API call failed): try again with backoff. Errors
	// in the template itself wait for the next change to it.
	return ctrl.Result{}, err
}

// reconcileTemplate compiles the template, applies its CRD and starts its
// watch. It returns pending while there is nothing to report yet (the CRD
// is not Established, or its watch has not synced), and err for failures
// worth retrying.
func (r *TemplateReconciler) reconcileTemplate(ctx context.Context, ct *templatesv1.ConstraintTemplate) (res templateResult, pending bool, err error) {
	kind := ct.Spec.CRD.Spec.Names.Kind
	res = templateResult{generation: ct.Generation, crdName: strings.ToLower(kind) + "." + ConstraintGroup}
	fail := func(code string, err error) (templateResult, bool, error) {
		res.errors = append(res.errors, statusError(code, err))
		return res, false, nil
	}

	if owner := r.Kinds.Owner(kind); owner != "" && owner != ct.Name {
		return fail(CodeCreate, fmt.Errorf("kind %q is already defined by ConstraintTemplate %q", kind, owner))
	}
	vct, desired, err := r.parse(ctx, ct)
	if err != nil {
		return fail(CodeCreate, err)
	}
	r.forgetOtherKind(ctx, ct.Name, kind)

	changed, ingestErr := r.load(ctx, ct, vct)
	var crd *apiextensionsv1.CustomResourceDefinition
	switch {
	case ingestErr != nil:
		res.errors = append(res.errors, statusError(CodeIngest, ingestErr))
		// The CRD is left as it is. If it exists, constraints of the kind
		// are still watched, so that they report the template's state.
		crd = r.ownedCRD(ctx, ct, res.crdName)
	case r.LeaveCRDs:
		// The replica that generates CRDs creates it; its event brings
		// the template back here.
		crd, err = r.existingCRD(ctx, res.crdName)
		if err != nil {
			return res, true, err
		}
		if crd == nil {
			res.crdLeft = true
			return res, true, nil
		}
	default:
		var code string
		crd, code, err = r.applyCRD(ctx, ct, desired)
		if err != nil {
			res.errors = append(res.errors, statusError(code, err))
			return res, false, err
		}
	}
	if crd == nil {
		return res, false, nil
	}
	if msg, rejected := crdNamesRejected(crd); rejected {
		return fail(CodeCreate, fmt.Errorf("constraint CRD %s: names not accepted: %s", crd.Name, msg))
	}
	if !crdEstablished(crd) {
		return res, len(res.errors) == 0, nil
	}
	res.created = true
	wctx, cancel := context.WithTimeout(ctx, watchSyncTimeout)
	defer cancel()
	if err := r.Watches.Ensure(wctx, kind); err != nil {
		return res, len(res.errors) == 0, err
	}
	r.Tracker.ExpectConstraints(kind, r.Watches.Names(kind))
	if changed {
		// The new version may accept or refuse constraints differently.
		r.Watches.EnqueueAll(kind)
	}
	if len(res.errors) == 0 && r.VAP != nil {
		pr, err := r.VAP.SyncPolicy(ctx, ct, vct)
		res.vap = pr.Status
		if pr.Changed && !changed {
			// Their bindings follow the policy.
			r.Watches.EnqueueAll(kind)
		}
		if err != nil {
			return res, false, fmt.Errorf("generating the ValidatingAdmissionPolicy: %w", err)
		}
	}
	return res, false, nil
}

// parse converts the template to the engine's type and builds its CRD.
func (r *TemplateReconciler) parse(ctx context.Context, ct *templatesv1.ConstraintTemplate) (*templates.ConstraintTemplate, *apiextensionsv1.CustomResourceDefinition, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ct)
	if err != nil {
		return nil, nil, fmt.Errorf("converting template: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetGroupVersionKind(templatesv1.SchemeGroupVersion.WithKind("ConstraintTemplate"))
	vct, err := engine.ParseTemplate(u)
	if err != nil {
		return nil, nil, err
	}
	crd, err := r.Engine.CreateCRD(ctx, vct)
	if err != nil {
		return nil, nil, err
	}
	return vct, crd, nil
}

// load compiles the template into the engine and reports whether the engine
// holds a new generation of it. On an error the engine keeps the previous
// version, if any, as Gatekeeper does: its constraints stay enforced.
func (r *TemplateReconciler) load(ctx context.Context, ct *templatesv1.ConstraintTemplate, vct *templates.ConstraintTemplate) (bool, error) {
	kind := vct.Spec.CRD.Spec.Names.Kind
	r.mu.Lock()
	k := r.known[ct.Name]
	if k == nil || k.uid != ct.UID {
		k = &knownTemplate{uid: ct.UID}
		r.known[ct.Name] = k
	}
	k.kind = kind
	held := r.Engine.Template(kind)
	same := held != nil && held.UID == ct.UID && held.Generation == ct.Generation
	failedErr := k.failedErr
	if k.failed != ct.Generation {
		failedErr = nil
	}
	r.mu.Unlock()
	if same {
		return false, nil
	}
	if failedErr != nil {
		return false, failedErr
	}
	start := time.Now()
	err := r.Engine.AddTemplate(ctx, vct)
	r.metrics.observeIngestion(err == nil, time.Since(start))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		k.failed, k.failedErr = ct.Generation, err
		return false, err
	}
	k.failedErr = nil
	r.Kinds.Set(kind, ct.Name)
	r.metrics.reportCEL(&r.celTally, ct.Name, hasCEL(vct))
	log.FromContext(ctx).Info("ConstraintTemplate compiled into the engine", "kind", kind, "generation", ct.Generation)
	return true, nil
}

// hasCEL reports whether a template has K8sNativeValidation (CEL) code.
func hasCEL(ct *templates.ConstraintTemplate) bool {
	for _, t := range ct.Spec.Targets {
		for _, c := range t.Code {
			if c.Engine == celdriver.Name {
				return true
			}
		}
	}
	return false
}

// forgetOtherKind unloads what this replica holds for the template if its
// kind changed (only its case can: the name must be the lowercase kind).
func (r *TemplateReconciler) forgetOtherKind(ctx context.Context, name, kind string) {
	r.mu.Lock()
	k := r.known[name]
	r.mu.Unlock()
	if k != nil && k.kind != "" && k.kind != kind {
		if err := r.unload(ctx, name); err != nil {
			log.FromContext(ctx).Error(err, "Unloading the previous kind", "kind", k.kind)
		}
	}
}

func (r *TemplateReconciler) unload(ctx context.Context, name string) error {
	r.mu.Lock()
	k := r.known[name]
	delete(r.known, name)
	r.mu.Unlock()
	if k == nil {
		return nil
	}
	r.Watches.Remove(k.kind)
	r.Tracker.CancelConstraints(k.kind)
	r.metrics.reportCEL(&r.celTally, name, false)
	if held := r.Engine.Template(k.kind); held != nil {
		if err := r.Engine.RemoveTemplate(ctx, held); err != nil {
			return fmt.Errorf("removing template %s from the engine: %w", name, err)
		}
	}
	r.Kinds.Release(k.kind, name)
	log.FromContext(ctx).Info("ConstraintTemplate unloaded", "kind", k.kind, "template", klog.KRef("", name))
	return nil
}
