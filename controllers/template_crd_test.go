package controllers

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMergeCRD(t *testing.T) {
	owner := metav1.OwnerReference{APIVersion: "templates.gatekeeper.sh/v1", Kind: "ConstraintTemplate", Name: "k8sx", UID: "new", Controller: new(true), BlockOwnerDeletion: new(true)}
	desired := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "k8sx.constraints.gatekeeper.sh", Labels: map[string]string{ConstraintCRDLabel: "yes"}, OwnerReferences: []metav1.OwnerReference{owner}},
		Spec:       apiextensionsv1.CustomResourceDefinitionSpec{Group: ConstraintGroup, Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: "K8sX"}},
	}
	t.Run("unchanged", func(t *testing.T) {
		existing := desired.DeepCopy()
		existing.ResourceVersion = "7"
		if _, changed := mergeCRD(existing, desired); changed {
			t.Error("an identical CRD is reported changed")
		}
	})
	t.Run("others' labels and owners kept", func(t *testing.T) {
		existing := desired.DeepCopy()
		existing.Labels["team"] = "platform"
		other := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "keep", UID: "cm"}
		existing.OwnerReferences = append([]metav1.OwnerReference{other}, existing.OwnerReferences...)
		want, changed := mergeCRD(existing, desired)
		if changed {
			t.Errorf("extra labels and owners are reported as a change: %+v", want.ObjectMeta)
		}
	})
	t.Run("new controller replaces old", func(t *testing.T) {
		existing := desired.DeepCopy()
		old := owner
		old.UID = "old"
		existing.OwnerReferences = []metav1.OwnerReference{old}
		want, changed := mergeCRD(existing, desired)
		if !changed || len(want.OwnerReferences) != 1 || want.OwnerReferences[0].UID != "new" {
			t.Errorf("owner references = %+v (changed %t), want only the new template", want.OwnerReferences, changed)
		}
	})
	t.Run("spec change", func(t *testing.T) {
		existing := desired.DeepCopy()
		existing.Spec.Names.ShortNames = []string{"x"}
		want, changed := mergeCRD(existing, desired)
		if !changed || len(want.Spec.Names.ShortNames) != 0 {
			t.Errorf("spec = %+v (changed %t), want desired's", want.Spec, changed)
		}
	})
}

func TestKinds(t *testing.T) {
	k := NewKinds()
	k.Set("K8sX", "k8sx")
	if k.Owner("k8sX") != "k8sx" || !k.Loaded("K8sX") || k.Loaded("K8SX") {
		t.Errorf("Owner/Loaded disagree with Set")
	}
	k.Release("K8sX", "other")
	if !k.Loaded("K8sX") {
		t.Error("Release by another template dropped the kind")
	}
	k.Release("K8sX", "k8sx")
	if k.Owner("K8sX") != "" || k.Loaded("K8sX") {
		t.Error("Release by its template kept the kind")
	}
}
