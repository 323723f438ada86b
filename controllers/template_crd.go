package controllers

import (
	"context"
	"fmt"
	"maps"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/portcullis-dev/portcullis/engine"
)

// ConstraintCRDLabel marks the CRDs of constraint kinds, as frameworks sets it.
const ConstraintCRDLabel = "gatekeeper.sh/constraint"

// applyCRD creates the constraint CRD, owned by the template, or updates it
// if it differs from desired. It writes nothing when the CRD is as desired,
// so restarts and resyncs do not touch CRDs. On failure it returns the
// status code for the error.
func (r *TemplateReconciler) applyCRD(ctx context.Context, ct *templatesv1.ConstraintTemplate, desired *apiextensionsv1.CustomResourceDefinition) (*apiextensionsv1.CustomResourceDefinition, string, error) {
	log := log.FromContext(ctx)
	desired = desired.DeepCopy()
	// Default as the API server does, so that an unchanged CRD compares equal.
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(desired)
	if desired.Spec.Conversion == nil {
		desired.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
	}
	if err := controllerutil.SetControllerReference(ct, desired, r.Scheme); err != nil {
		return nil, CodeCreate, fmt.Errorf("owning constraint CRD %s: %w", desired.Name, err)
	}

	existing := &apiextensionsv1.CustomResourceDefinition{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: desired.Name}, existing)
	if apierrors.IsNotFound(err) {
		err = r.Client.Create(ctx, desired, client.FieldOwner(FieldManager))
		if err == nil {
			log.Info("Created constraint CRD", "crd", klog.KObj(desired))
			return desired, "", nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, CodeCreate, fmt.Errorf("creating constraint CRD %s: %w", desired.Name, err)
		}
		// It exists without our label, so the cache does not hold it.
		err = r.APIReader.Get(ctx, client.ObjectKey{Name: desired.Name}, existing)
	}
	if err != nil {
		return nil, CodeCreate, fmt.Errorf("getting constraint CRD %s: %w", desired.Name, err)
	}

	want, changed := mergeCRD(existing, desired)
	if !changed {
		return existing, "", nil
	}
	if err := r.Client.Update(ctx, want, client.FieldOwner(FieldManager)); err != nil {
		return nil, CodeUpdate, fmt.Errorf("updating constraint CRD %s: %w", desired.Name, err)
	}
	log.Info("Updated constraint CRD", "crd", klog.KObj(want))
	return want, "", nil
}

// mergeCRD returns existing with the spec, labels and controller reference
// of desired, and whether that changed anything. Labels and owner
// references that others set are kept.
func mergeCRD(existing, desired *apiextensionsv1.CustomResourceDefinition) (*apiextensionsv1.CustomResourceDefinition, bool) {
	want := existing.DeepCopy()
	if want.Labels == nil {
		want.Labels = map[string]string{}
	}
	maps.Copy(want.Labels, desired.Labels)
	owner := metav1.GetControllerOf(desired)
	refs := make([]metav1.OwnerReference, 0, len(existing.OwnerReferences)+1)
	for _, ref := range existing.OwnerReferences {
		// Drop another controller, e.g. a deleted template of the same name.
		if (ref.Controller != nil && *ref.Controller && ref.UID != owner.UID) || ref.UID == owner.UID {
			continue
		}
		refs = append(refs, ref)
	}
	refs = append(refs, *owner)
	want.OwnerReferences = refs
	want.Spec = desired.Spec
	changed := !equality.Semantic.DeepEqual(existing.Labels, want.Labels) ||
		!equality.Semantic.DeepEqual(existing.OwnerReferences, want.OwnerReferences) ||
		!equality.Semantic.DeepEqual(existing.Spec, want.Spec)
	return want, changed
}

// ownedCRD returns the template's constraint CRD if it exists and the
// template controls it, else nil.
func (r *TemplateReconciler) ownedCRD(ctx context.Context, ct *templatesv1.ConstraintTemplate, name string) *apiextensionsv1.CustomResourceDefinition {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		return nil
	}
	if !metav1.IsControlledBy(crd, ct) {
		return nil
	}
	return crd
}

// existingCRD returns the constraint CRD of that name, whoever owns it, or
// nil if there is none. It reads the API server when the cache, which
// holds labeled CRDs only, lacks it.
func (r *TemplateReconciler) existingCRD(ctx context.Context, name string) (*apiextensionsv1.CustomResourceDefinition, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, crd)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, client.ObjectKey{Name: name}, crd)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting constraint CRD %s: %w", name, err)
	}
	return crd, nil
}

func crdEstablished(crd *apiextensionsv1.CustomResourceDefinition) bool {
	return apihelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established)
}

func crdNamesRejected(crd *apiextensionsv1.CustomResourceDefinition) (string, bool) {
	c := apihelpers.FindCRDCondition(crd, apiextensionsv1.NamesAccepted)
	if c == nil || c.Status != apiextensionsv1.ConditionFalse {
		return "", false
	}
	return c.Message, true
}

func isTemplateGroup(apiVersion string) bool {
	gv, err := schema.ParseGroupVersion(apiVersion)
	return err == nil && gv.Group == engine.TemplateGroup
}
