package vap

import (
	"context"
	"errors"
	"fmt"
	"slices"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
)

// PolicyResult is what SyncPolicy did for a template.
type PolicyResult struct {
	// Status is the template's vapGenerationStatus, nil when it is to get
	// no policy.
	Status *GenerationStatus
	// Changed is set when the policy was created or deleted: the
	// bindings of the template's constraints depend on it.
	Changed bool
}

// SyncPolicy generates, updates or deletes the policy of a template that
// the engine has loaded (vct is ct converted). Problems in the template
// or refusals of the API server are in the result's status, not returned:
// the error is for what is worth retrying.
func (r *Reconciler) SyncPolicy(ctx context.Context, ct *templatesv1.ConstraintTemplate, vct *templates.ConstraintTemplate) (PolicyResult, error) {
	name := PolicyName(ct.Name)
	res := PolicyResult{}
	setStatus := func(s *GenerationStatus) {
		s.ObservedGeneration = ct.Generation
		res.Status = s
		r.policies.set(name, s.State == StateGenerated)
	}
	generate, err := GeneratesPolicy(vct, r.Options.CreatePolicies)
	if err != nil && !errors.Is(err, ErrNoCEL) {
		setStatus(notGenerated("%v", err))
	}
	available, aerr := r.Available()
	switch {
	case aerr != nil:
		if generate {
			setStatus(notGenerated("%v", aerr))
		}
		return res, aerr
	case !available:
		if generate {
			setStatus(notGenerated("%v", ErrAPIDisabled))
		} else if res.Status == nil {
			r.policies.forget(name)
		}
		return res, nil
	case !generate:
		if res.Status == nil {
			r.policies.forget(name)
		}
		deleted, err := remove(ctx, r, &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil, false)
		if err != nil {
			return res, fmt.Errorf("deleting ValidatingAdmissionPolicy %s: %w", name, err)
		}
		if deleted {
			log.FromContext(ctx).Info("Deleted the ValidatingAdmissionPolicy of a template that is not to have one", "policy", klog.KRef("", name))
		}
		res.Changed = deleted
		return res, nil
	}

	var scope *Scope
	if r.Options.SyncEnforcementScope && r.Scope != nil {
		scope = r.Scope(ctx)
	}
	desired, warning, err := Policy(vct, PolicyInput{
		DefaultFailurePolicy: r.Options.DefaultFailurePolicy, Scope: scope, Namespace: r.Namespace, Exempt: r.Exempt,
	})
	if err != nil {
		setStatus(notGenerated("could not transform the template into a ValidatingAdmissionPolicy: %v", err))
		return res, nil
	}
	if err := controllerutil.SetControllerReference(ct, desired, r.Scheme); err != nil {
		return res, fmt.Errorf("owning ValidatingAdmissionPolicy %s: %w", name, err)
	}
	created := false
	wrote, err := apply(ctx, r, desired, &admissionregistrationv1.ValidatingAdmissionPolicy{},
		func(p *admissionregistrationv1.ValidatingAdmissionPolicy) any { return p.Spec },
		func(dst, src *admissionregistrationv1.ValidatingAdmissionPolicy) { dst.Spec = src.Spec })
	if err != nil {
		setStatus(notGenerated("the API server refused ValidatingAdmissionPolicy %s: %v", name, err))
		if refused(err) {
			return res, nil
		}
		return res, err
	}
	if wrote {
		created = desired.ResourceVersion != ""
		log.FromContext(ctx).Info("Wrote the template's ValidatingAdmissionPolicy", "policy", klog.KRef("", name))
		if gone, err := r.ownerGone(ctx, templatesv1.SchemeGroupVersion.WithKind("ConstraintTemplate"), ct.Name, ct.UID); err != nil || gone {
			// Deleted meanwhile: its delete path may have run already.
			if gone {
				_, err = r.DeletePolicy(ctx, ct.Name)
			}
			return res, err
		}
	}
	setStatus(&GenerationStatus{State: StateGenerated, Warning: warning})
	res.Changed = created
	return res, nil
}

// ownerGone reads an owner from the API server: gone when it is not found,
// is being deleted, or is another object of the same name.
func (r *Reconciler) ownerGone(ctx context.Context, gvk schema.GroupVersionKind, name string, uid types.UID) (bool, error) {
	u := &metav1.PartialObjectMetadata{}
	u.SetGroupVersionKind(gvk)
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, u)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("getting %s %s: %w", gvk.Kind, name, err)
	}
	return u.DeletionTimestamp != nil || (uid != "" && u.UID != uid), nil
}

// DeletePolicy deletes the policy of a template that is gone, and the
// bindings of its constraints, so that no binding outlives its policy:
// call it before the constraint CRD is deleted, as a binding whose
// constraint kind is gone fails every request it matches with
// failurePolicy Fail. It reports whether it deleted anything.
func (r *Reconciler) DeletePolicy(ctx context.Context, template string) (bool, error) {
	name := PolicyName(template)
	r.policies.forget(name)
	if ok, err := r.Available(); err != nil || !ok {
		return false, err
	}
	deleted, err := remove(ctx, r, &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil, true)
	if err != nil {
		return false, fmt.Errorf("deleting ValidatingAdmissionPolicy %s: %w", name, err)
	}
	if deleted {
		log.FromContext(ctx).Info("Deleted the ValidatingAdmissionPolicy of a deleted template", "policy", klog.KRef("", name))
	}
	// Live: a binding just created is not in the cache yet.
	list := &admissionregistrationv1.ValidatingAdmissionPolicyBindingList{}
	if err := r.APIReader.List(ctx, list); err != nil {
		return deleted, fmt.Errorf("listing ValidatingAdmissionPolicyBindings: %w", err)
	}
	for i := range list.Items {
		b := &list.Items[i]
		if b.Spec.PolicyName != name || !controlledByConstraint(b) {
			continue
		}
		r.bindings.forget(b.Name)
		uid := b.UID
		err := r.Client.Delete(ctx, b, client.Preconditions{UID: &uid})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return deleted, fmt.Errorf("deleting ValidatingAdmissionPolicyBinding %s: %w", b.Name, err)
		}
		deleted = deleted || err == nil
	}
	return deleted, nil
}

// Rescope asks for every template with CEL to be reconciled again, as
// what the webhook judges changed (the Config's exclusions): see Events.
func (r *Reconciler) Rescope(ctx context.Context) {
	for _, req := range r.celTemplates(ctx) {
		u := &unstructured.Unstructured{}
		u.SetName(req.Name)
		select {
		case r.events <- event.GenericEvent{Object: u}:
		case <-ctx.Done():
			return
		}
	}
}

// WebhookConfigurationChanged maps a change of a
// ValidatingWebhookConfiguration to the templates with CEL when it is the
// webhook's, whose rules and selectors their policies follow.
func (r *Reconciler) WebhookConfigurationChanged(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetName() != r.WebhookConfiguration {
		return nil
	}
	return r.celTemplates(ctx)
}

// celTemplates lists the templates with CEL, when policies follow the
// webhook's scope.
func (r *Reconciler) celTemplates(ctx context.Context) []reconcile.Request {
	if !r.Options.SyncEnforcementScope {
		return nil
	}
	list := &templatesv1.ConstraintTemplateList{}
	if err := r.Client.List(ctx, list); err != nil {
		r.Log.Error(err, "Listing ConstraintTemplates to rescope their policies")
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if hasCEL(&list.Items[i]) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
		}
	}
	return out
}

func hasCEL(ct *templatesv1.ConstraintTemplate) bool {
	for _, t := range ct.Spec.Targets {
		if slices.ContainsFunc(t.Code, func(c templatesv1.Code) bool { return c.Engine == celdriver.Name }) {
			return true
		}
	}
	return false
}
