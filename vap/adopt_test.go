package vap_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// leftObjects are the objects leaveAsGatekeeper changed.
type leftObjects struct {
	policyUID, bindingUID types.UID
	policy, binding       string
	legacy                string
}

// leaveAsGatekeeper rewrites the policy of template and the binding of
// its constraint warn-owner as an older Gatekeeper would have left them
// (another field manager, a stale spec, Gatekeeper's apiVersion in the
// owner reference), and adds a binding of Gatekeeper's former name for
// dryrun-owner.
func leaveAsGatekeeper(t *testing.T, template, kind string) leftObjects {
	t.Helper()
	ctx := t.Context()
	gk := client.FieldOwner("gatekeeper")
	p, err := getPolicy(ctx, "gatekeeper-"+template)
	if err != nil {
		t.Fatal(err)
	}
	ref := *metav1.GetControllerOf(p)
	ref.APIVersion = "templates.gatekeeper.sh/v1beta1"
	p.OwnerReferences = []metav1.OwnerReference{ref}
	p.Spec.Validations[0].MessageExpression = "'stale'"
	if err := env.Client.Update(ctx, p, gk); err != nil {
		t.Fatal(err)
	}
	b, err := getBinding(ctx, "gatekeeper-vaplabels-warn-owner")
	if err != nil {
		t.Fatal(err)
	}
	b.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}
	if err := env.Client.Update(ctx, b, gk); err != nil {
		t.Fatal(err)
	}
	d, err := getBinding(ctx, "gatekeeper-vaplabels-dryrun-owner")
	if err != nil {
		t.Fatal(err)
	}
	legacy := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "gatekeeper-dryrun-owner", OwnerReferences: d.OwnerReferences},
		Spec:       d.Spec,
	}
	legacy.OwnerReferences[0].BlockOwnerDeletion = new(false)
	if err := env.Client.Create(ctx, legacy, gk); err != nil {
		t.Fatal(err)
	}
	return leftObjects{policyUID: p.UID, bindingUID: b.UID, policy: p.Name, binding: b.Name, legacy: legacy.Name}
}

// checkAdopted waits until the objects leaveAsGatekeeper changed are as
// generated again, the same objects (UIDs), and the legacy binding gone.
func checkAdopted(t *testing.T, left leftObjects) {
	t.Helper()
	eventually(t, "the policy and binding left to be taken over", func(ctx context.Context) error {
		p, err := getPolicy(ctx, left.policy)
		if err != nil {
			return err
		}
		ref := metav1.GetControllerOf(p)
		if p.UID != left.policyUID || p.Spec.Validations[0].MessageExpression == "'stale'" ||
			ref == nil || ref.APIVersion != "templates.gatekeeper.sh/v1" {
			return fmt.Errorf("policy uid %s (was %s), messageExpression %q, controller %+v", p.UID, left.policyUID, p.Spec.Validations[0].MessageExpression, ref)
		}
		b, err := getBinding(ctx, left.binding)
		if err != nil {
			return err
		}
		if b.UID != left.bindingUID || !slices.Equal(b.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn}) {
			return fmt.Errorf("binding uid %s (was %s), validationActions %v", b.UID, left.bindingUID, b.Spec.ValidationActions)
		}
		if !managedBy(p.ManagedFields, "portcullis") || !managedBy(b.ManagedFields, "portcullis") {
			return fmt.Errorf("field managers %v and %v, want portcullis among them", p.ManagedFields, b.ManagedFields)
		}
		return gone(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, left.legacy)
	})
	list := &admissionregistrationv1.ValidatingAdmissionPolicyList{}
	if err := env.Client.List(t.Context(), list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Errorf("%d policies, want the one taken over", len(list.Items))
	}
}

func managedBy(fields []metav1.ManagedFieldsEntry, manager string) bool {
	return slices.ContainsFunc(fields, func(f metav1.ManagedFieldsEntry) bool { return f.Manager == manager })
}
