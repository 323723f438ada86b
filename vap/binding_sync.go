package vap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// constraintGroup is the group of every constraint kind.
const constraintGroup = "constraints.gatekeeper.sh"

// Messages of a constraint's vap.k8s.io status, Gatekeeper's.
const (
	msgNoPolicy = "cannot generate ValidatingAdmissionPolicyBinding: conditions are not satisfied to generate ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding"
	msgWaiting  = "waiting until %s before generating ValidatingAdmissionPolicyBinding to make sure api-server has cached constraint CRD"
)

// BindingResult is what SyncBinding did for a constraint.
type BindingResult struct {
	// Status is the constraint's vap.k8s.io entry of
	// enforcementPointsStatus, nil when it is to have none.
	Status *EnforcementPointStatus
	// RequeueAfter is when to look again at a binding that waits for its
	// constraint CRD to be old enough.
	RequeueAfter time.Duration
}

// SyncBinding generates, updates or deletes the binding of a constraint
// that the engine enforces. Problems in the constraint or its template,
// and refusals of the API server, are in the result's status: the error
// is for what is worth retrying.
func (r *Reconciler) SyncBinding(ctx context.Context, u *unstructured.Unstructured) (BindingResult, error) {
	name := BindingName(u.GetKind(), u.GetName())
	res := BindingResult{}
	set := func(state, msg string) {
		res.Status = &EnforcementPointStatus{EnforcementPoint: EnforcementPoint, State: state, Message: msg, ObservedGeneration: u.GetGeneration()}
		if state != StateWaiting {
			r.bindings.set(name, state == StateGenerated)
		}
	}
	actions, err := BindingActions(u, r.Options.CreateBindings)
	if err != nil {
		set(StateError, "could not determine if ValidatingAdmissionPolicyBinding should be generated: "+err.Error())
		return res, nil
	}
	intends := len(actions) > 0
	generate := intends
	if generate {
		ct, vct, err := r.template(ctx, strings.ToLower(u.GetKind()))
		if err != nil || ct == nil {
			return res, err // gone: its delete path removes the bindings
		}
		has, err := GeneratesPolicy(vct, r.Options.CreatePolicies)
		switch {
		case errors.Is(err, ErrNoCEL):
			set(StateError, err.Error())
		case err != nil:
			set(StateError, "could not determine if ConstraintTemplate is configured to generate ValidatingAdmissionPolicy: "+err.Error())
		case !has:
			set(StateError, msgNoPolicy)
		}
		generate = err == nil && has
	}
	available, err := r.Available()
	if err != nil {
		return res, err
	}
	if !available {
		if generate {
			set(StateError, "cannot generate ValidatingAdmissionPolicyBinding: "+ErrAPIDisabled.Error())
		} else if res.Status == nil {
			r.bindings.forget(name)
		}
		return res, nil
	}
	if generate {
		// A constraint that cannot have a binding says so at once, not
		// after the wait.
		desired, err := Binding(u, actions)
		if err == nil {
			wait, until, err := r.waitForCRD(ctx, u.GetKind())
			switch {
			case err != nil:
				return res, err
			case wait > 0:
				set(StateWaiting, fmt.Sprintf(msgWaiting, until.UTC().Format(time.RFC3339)))
				res.RequeueAfter = wait
				return res, nil
			}
			return res, r.writeBinding(ctx, u, desired, set)
		}
		set(StateError, "could not transform constraint to ValidatingAdmissionPolicyBinding: "+err.Error())
	}
	if err := r.removeBinding(ctx, u.GetKind(), u.GetName(), u.GetUID(), false); err != nil {
		return res, err
	}
	if !intends && res.Status == nil {
		r.bindings.forget(name)
	}
	return res, nil
}

// writeBinding creates or updates the binding of u.
func (r *Reconciler) writeBinding(ctx context.Context, u *unstructured.Unstructured, desired *admissionregistrationv1.ValidatingAdmissionPolicyBinding, set func(state, msg string)) error {
	if err := controllerutil.SetControllerReference(u, desired, r.Scheme); err != nil {
		return fmt.Errorf("owning ValidatingAdmissionPolicyBinding %s: %w", desired.Name, err)
	}
	wrote, err := apply(ctx, r, desired, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{},
		func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) any { return b.Spec },
		func(dst, src *admissionregistrationv1.ValidatingAdmissionPolicyBinding) { dst.Spec = src.Spec })
	if err != nil {
		set(StateError, fmt.Sprintf("could not write ValidatingAdmissionPolicyBinding %s: %v", desired.Name, err))
		if refused(err) {
			return nil
		}
		return err
	}
	if wrote {
		log.FromContext(ctx).Info("Wrote the constraint's ValidatingAdmissionPolicyBinding", "binding", klog.KRef("", desired.Name))
		// The constraint or its template deleted meanwhile would leave
		// the binding behind: their delete paths may have run already.
		gone, err := r.ownerGone(ctx, u.GroupVersionKind(), u.GetName(), u.GetUID())
		if err == nil && !gone {
			gone, err = r.ownerGone(ctx, templatesv1.SchemeGroupVersion.WithKind("ConstraintTemplate"), strings.ToLower(u.GetKind()), "")
		}
		if err != nil || gone {
			if gone {
				err = r.removeBinding(ctx, u.GetKind(), u.GetName(), "", true)
			}
			return err
		}
	}
	set(StateGenerated, "")
	// Gatekeeper before 3.23 named bindings gatekeeper-<constraint>.
	if legacy := legacyBindingName(u.GetName()); legacy != desired.Name {
		b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: legacy}}
		if _, err := remove(ctx, r, b, func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) bool {
			return !controlledBy(b, u.GetKind(), u.GetName(), u.GetUID())
		}, false); err != nil {
			log.FromContext(ctx).Error(err, "Deleting a binding of Gatekeeper's former name", "binding", klog.KRef("", legacy))
		}
	}
	return nil
}

// DeleteBinding deletes the binding of a constraint that is gone, if the
// constraint controls it.
func (r *Reconciler) DeleteBinding(ctx context.Context, kind, name string) error {
	r.bindings.forget(BindingName(kind, name))
	if ok, err := r.Available(); err != nil || !ok {
		return err
	}
	return r.removeBinding(ctx, kind, name, "", true)
}

// removeBinding deletes the binding of constraint kind/name if that
// constraint (of that uid, unless empty) controls it, read from the cache
// or with live from the API server.
func (r *Reconciler) removeBinding(ctx context.Context, kind, name string, uid types.UID, live bool) error {
	b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: BindingName(kind, name)}}
	deleted, err := remove(ctx, r, b, func(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) bool {
		return !controlledBy(b, kind, name, uid)
	}, live)
	if err != nil {
		return fmt.Errorf("deleting ValidatingAdmissionPolicyBinding %s: %w", b.Name, err)
	}
	if deleted {
		log.FromContext(ctx).Info("Deleted a constraint's ValidatingAdmissionPolicyBinding", "binding", klog.KObj(b))
	}
	return nil
}

// waitForCRD is how long a binding of kind is still to wait: until
// WaitForBindings after its constraint CRD was created.
func (r *Reconciler) waitForCRD(ctx context.Context, kind string) (time.Duration, time.Time, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	name := strings.ToLower(kind) + "." + constraintGroup
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		return 0, time.Time{}, fmt.Errorf("getting constraint CRD %s: %w", name, err)
	}
	until := crd.CreationTimestamp.Add(r.Options.WaitForBindings)
	return time.Until(until), until, nil
}

// template reads a template from the cache and converts it; nil when it
// is gone.
func (r *Reconciler) template(ctx context.Context, name string) (*templatesv1.ConstraintTemplate, *templates.ConstraintTemplate, error) {
	ct := &templatesv1.ConstraintTemplate{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, ct); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("getting ConstraintTemplate %s: %w", name, err)
	}
	if !ct.DeletionTimestamp.IsZero() {
		return nil, nil, nil
	}
	if !hasCEL(ct) {
		// Most templates: no need to convert them to learn it.
		return ct, &templates.ConstraintTemplate{}, nil
	}
	vct := &templates.ConstraintTemplate{}
	if err := r.Scheme.Convert(ct, vct, nil); err != nil {
		return nil, nil, fmt.Errorf("converting ConstraintTemplate %s: %w", name, err)
	}
	return ct, vct, nil
}

// controlledByConstraint reports whether a constraint controls b.
func controlledByConstraint(b metav1.Object) bool {
	ref := metav1.GetControllerOfNoCopy(b)
	if ref == nil {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == constraintGroup
}

// controlledBy reports whether constraint kind/name (of that uid, unless
// empty) controls b.
func controlledBy(b metav1.Object, kind, name string, uid types.UID) bool {
	ref := metav1.GetControllerOfNoCopy(b)
	return controlledByConstraint(b) && ref.Kind == kind && ref.Name == name && (uid == "" || ref.UID == uid)
}

// BindingOwner returns the constraint that controls a binding, for
// watches that map a binding's events to its constraint.
func BindingOwner(b metav1.Object) (kind, name string, ok bool) {
	if !controlledByConstraint(b) {
		return "", "", false
	}
	ref := metav1.GetControllerOfNoCopy(b)
	return ref.Kind, ref.Name, true
}

// PolicyOwner returns the template that controls a policy.
func PolicyOwner(p metav1.Object) (template string, ok bool) {
	ref := metav1.GetControllerOfNoCopy(p)
	if ref == nil || ref.Kind != "ConstraintTemplate" {
		return "", false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil || gv.Group != templatesv1.SchemeGroupVersion.Group {
		return "", false
	}
	return ref.Name, true
}
