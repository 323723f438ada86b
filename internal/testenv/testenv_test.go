package testenv_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	templatesv1beta1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1beta1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

const (
	templateCRD = "constrainttemplates.templates.gatekeeper.sh"
	target      = "admission.k8s.gatekeeper.sh"
	rego        = `package k8srequiredlabels

violation[{"msg": "x"}] { false }
`
)

// TestControlPlane starts one control plane and checks, in order, that the
// ConstraintTemplate CRD is installed as designed, that a v1 template round
// trips, that it is served as v1beta1 too, and that status is a subresource.
func TestControlPlane(t *testing.T) {
	env := testenv.Start(t)
	t.Logf("Control plane started in %s", env.StartupTime.Round(1e6))
	ctx := t.Context()
	c := env.Client

	t.Run("CRD", func(t *testing.T) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: templateCRD}, &crd); err != nil {
			t.Fatalf("Get CRD: %v", err)
		}
		if !crdCondition(&crd, apiextensionsv1.Established) {
			t.Errorf("CRD %s is not Established: %+v", templateCRD, crd.Status.Conditions)
		}
		if !crdCondition(&crd, apiextensionsv1.NamesAccepted) {
			t.Errorf("CRD %s names not accepted: %+v", templateCRD, crd.Status.Conditions)
		}
		if crd.Spec.Scope != apiextensionsv1.ClusterScoped {
			t.Errorf("scope = %q, want %q", crd.Spec.Scope, apiextensionsv1.ClusterScoped)
		}
		if crd.Spec.Names.Kind != "ConstraintTemplate" {
			t.Errorf("kind = %q, want ConstraintTemplate", crd.Spec.Names.Kind)
		}
		type want struct{ served, storage bool }
		wants := map[string]want{"v1": {true, true}, "v1beta1": {true, false}, "v1alpha1": {true, false}}
		if len(crd.Spec.Versions) != len(wants) {
			t.Errorf("got %d versions, want %d", len(crd.Spec.Versions), len(wants))
		}
		for _, v := range crd.Spec.Versions {
			w, ok := wants[v.Name]
			if !ok {
				t.Errorf("unexpected version %q", v.Name)
				continue
			}
			if v.Served != w.served || v.Storage != w.storage {
				t.Errorf("version %s: served=%t storage=%t, want served=%t storage=%t", v.Name, v.Served, v.Storage, w.served, w.storage)
			}
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Errorf("version %s has no status subresource", v.Name)
			}
		}
	})

	ct := &templatesv1.ConstraintTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "k8srequiredlabels"},
		Spec: templatesv1.ConstraintTemplateSpec{
			CRD:     templatesv1.CRD{Spec: templatesv1.CRDSpec{Names: templatesv1.Names{Kind: "K8sRequiredLabels"}}},
			Targets: []templatesv1.Target{{Target: target, Rego: rego}},
		},
	}

	t.Run("CreateV1", func(t *testing.T) {
		if err := c.Create(ctx, ct); err != nil {
			t.Fatalf("Create v1 ConstraintTemplate: %v", err)
		}
		var got templatesv1.ConstraintTemplate
		if err := c.Get(ctx, client.ObjectKeyFromObject(ct), &got); err != nil {
			t.Fatalf("Get v1 ConstraintTemplate: %v", err)
		}
		if got.UID == "" || got.UID != ct.UID {
			t.Errorf("UID = %q, want %q from Create", got.UID, ct.UID)
		}
		if k := got.Spec.CRD.Spec.Names.Kind; k != "K8sRequiredLabels" {
			t.Errorf("spec.crd.spec.names.kind = %q, want K8sRequiredLabels", k)
		}
		if len(got.Spec.Targets) != 1 || got.Spec.Targets[0].Target != target || got.Spec.Targets[0].Rego != rego {
			t.Errorf("spec.targets = %+v, want one %s target with the Rego sent", got.Spec.Targets, target)
		}
	})

	t.Run("ReadV1beta1", func(t *testing.T) {
		var got templatesv1beta1.ConstraintTemplate
		if err := c.Get(ctx, client.ObjectKeyFromObject(ct), &got); err != nil {
			t.Fatalf("Get v1beta1 ConstraintTemplate: %v", err)
		}
		if got.UID != ct.UID {
			t.Errorf("v1beta1 UID = %q, want %q", got.UID, ct.UID)
		}
		if k := got.Spec.CRD.Spec.Names.Kind; k != "K8sRequiredLabels" {
			t.Errorf("v1beta1 spec.crd.spec.names.kind = %q, want K8sRequiredLabels", k)
		}
		if len(got.Spec.Targets) != 1 || got.Spec.Targets[0].Rego != rego {
			t.Errorf("v1beta1 spec.targets = %+v, want the Rego sent as v1", got.Spec.Targets)
		}
	})

	t.Run("StatusSubresource", func(t *testing.T) {
		var got templatesv1.ConstraintTemplate
		if err := c.Get(ctx, client.ObjectKeyFromObject(ct), &got); err != nil {
			t.Fatalf("Get: %v", err)
		}
		gen := got.Generation
		got.Status.Created = true
		got.Status.ByPod = []templatesv1.ByPodStatus{{ID: "smoke", ObservedGeneration: gen}}
		if err := c.Status().Update(ctx, &got); err != nil {
			t.Fatalf("Status().Update: %v", err)
		}
		var after templatesv1.ConstraintTemplate
		if err := c.Get(ctx, client.ObjectKeyFromObject(ct), &after); err != nil {
			t.Fatalf("Get after status update: %v", err)
		}
		if !after.Status.Created || len(after.Status.ByPod) != 1 || after.Status.ByPod[0].ID != "smoke" {
			t.Errorf("status = %+v, want created with one byPod entry", after.Status)
		}
		if after.Generation != gen {
			t.Errorf("generation moved from %d to %d on a status-only update", gen, after.Generation)
		}
	})
}

func crdCondition(crd *apiextensionsv1.CustomResourceDefinition, typ apiextensionsv1.CustomResourceDefinitionConditionType) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == typ {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

func TestRepoRoot(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "config", "crd", "bases", "templates.gatekeeper.sh_constrainttemplates.yaml")); err != nil {
		t.Errorf("repo root %s has no generated ConstraintTemplate CRD: %v", root, err)
	}
}

func TestInCI(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want bool
	}{
		{"", false}, {"false", false}, {"0", false}, {"FALSE", false},
		{"true", true}, {"1", true}, {"yes", true},
	} {
		t.Run("CI="+tc.val, func(t *testing.T) {
			t.Setenv("CI", tc.val)
			if got := testenv.InCI(); got != tc.want {
				t.Errorf("InCI() with CI=%q = %t, want %t", tc.val, got, tc.want)
			}
		})
	}
}

func TestAssetsDirMissing(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBEBUILDER_ASSETS", dir)
	got, err := testenv.AssetsDir()
	if err == nil {
		t.Fatalf("AssetsDir() with empty %s: no error", dir)
	}
	if got != dir {
		t.Errorf("AssetsDir() = %q, want %q", got, dir)
	}
	if !errors.Is(err, testenv.ErrNoAssets) {
		t.Errorf("error %v does not wrap ErrNoAssets", err)
	}
}
