package controllers

import (
	"context"
	"fmt"
	"strings"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// templateForCRD maps a constraint CRD, <template>.constraints.gatekeeper.sh,
// to its template.
func templateForCRD(_ context.Context, o client.Object) []reconcile.Request {
	name, ok := strings.CutSuffix(o.GetName(), "."+ConstraintGroup)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
}

// reconcileDelete handles a template that is gone or being deleted: its
// ValidatingAdmissionPolicy and bindings are deleted, its watch stops and
// the engine drops it with its constraints. Its CRD is deleted too (see
// leftoverCRD). A constraint CRD that stays without a
// template, orphaned by `kubectl delete --cascade=orphan` for instance,
// keeps being watched, so that its constraints report that no template
// enforces them rather than a stale `enforced: true`.
func (r *TemplateReconciler) reconcileDelete(ctx context.Context, name string) error {
	if r.VAP != nil {
		// Before the CRD: a binding whose constraint kind is gone fails
		// the requests it matches.
		if _, err := r.VAP.DeletePolicy(ctx, name); err != nil {
			return err
		}
	}
	crd, err := r.leftoverCRD(ctx, name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	k := r.known[name]
	r.mu.Unlock()
	if crd == nil || !crdEstablished(crd) {
		if err := r.unload(ctx, name); err != nil {
			return err
		}
		r.Tracker.TemplateDone(name)
		return nil
	}
	kind := crd.Spec.Names.Kind
	if k == nil || k.kind != kind || r.Engine.Template(kind) != nil {
		if err := r.unload(ctx, name); err != nil {
			return err
		}
		r.mu.Lock()
		r.known[name] = &knownTemplate{kind: kind}
		r.mu.Unlock()
		log.FromContext(ctx).Info("Constraint CRD left without a ConstraintTemplate: its constraints are not enforced", "crd", klog.KObj(crd))
	}
	wctx, cancel := context.WithTimeout(ctx, watchSyncTimeout)
	defer cancel()
	if err := r.Watches.Ensure(wctx, kind); err != nil {
		return err
	}
	r.Tracker.ExpectConstraints(kind, r.Watches.Names(kind))
	r.Tracker.TemplateDone(name)
	return nil
}

// leftoverCRD deletes the constraint CRD of a template that is gone (or
// replaced by a new one of the same name), which takes its constraints with
// it, and returns nil. The owner reference lets the garbage collector do the
// same; doing it here does not wait for it, and covers control planes that
// run none, like envtest. It also deletes the CRD of a template being
// deleted, unless the delete orphans dependents. Reads are live, so that a
// stale cache never deletes a CRD in use.
//
// It returns the CRD when it stays without a template: orphaned, or not
// controlled by any template.
func (r *TemplateReconciler) leftoverCRD(ctx context.Context, template string) (*apiextensionsv1.CustomResourceDefinition, error) {
	name := template + "." + ConstraintGroup
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if !crd.DeletionTimestamp.IsZero() || crd.Labels[ConstraintCRDLabel] != "yes" {
		return nil, nil // going already, or not a constraint CRD
	}
	ref := metav1.GetControllerOf(crd)
	if ref == nil {
		return crd, nil
	}
	if ref.Kind != "ConstraintTemplate" || ref.Name != template || !isTemplateGroup(ref.APIVersion) {
		return nil, nil // someone else's
	}
	ct := &metav1.PartialObjectMetadata{}
	ct.SetGroupVersionKind(templatesv1.SchemeGroupVersion.WithKind("ConstraintTemplate"))
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: template}, ct)
	switch {
	case err != nil && !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("getting ConstraintTemplate %s: %w", template, err)
	case err == nil && ct.UID == ref.UID && ct.DeletionTimestamp.IsZero():
		return nil, nil // alive: the normal path handles it
	case err == nil && ct.UID == ref.UID && controllerutil.ContainsFinalizer(ct, metav1.FinalizerOrphanDependents):
		return crd, nil // the garbage collector will orphan it
	}
	if r.LeaveCRDs {
		return nil, nil // the replica that generates CRDs deletes it
	}
	uid := crd.UID
	err = r.Client.Delete(ctx, crd, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deleting constraint CRD %s: %w", name, err)
	}
	log.FromContext(ctx).Info("Deleted the constraint CRD of a deleted ConstraintTemplate", "crd", klog.KObj(crd))
	return nil, nil
}
