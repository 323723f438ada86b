package vap_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/portcullis-dev/portcullis/internal/manager/managertest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/vap"
)

// TestNoPolicyAPI runs against an API server that does not serve
// admissionregistration.k8s.io/v1 policies: templates and constraints
// load, and their status says why nothing was generated.
func TestNoPolicyAPI(t *testing.T) {
	needEnv(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	assets, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	te := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "crds.yaml")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                env.Scheme,
	}
	api := te.ControlPlane.GetAPIServer().Configure()
	api.Append("runtime-config", "admissionregistration.k8s.io/v1/validatingadmissionpolicies=false,admissionregistration.k8s.io/v1/validatingadmissionpolicybindings=false")
	api.Append("disable-admission-plugins", "ServiceAccount,ValidatingAdmissionPolicy")
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop()
		t.Fatalf("starting an API server without the policy API: %v", err)
	}
	t.Cleanup(func() {
		if err := te.Stop(); err != nil {
			t.Error(err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	const podID = "pod-no-api"
	opts := managertest.Options(podID)
	opts.VAP = vap.NewOptions()
	m, err := managertest.Start(cfg, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Error(err)
		}
	})
	ct := testenv.Parse(t, labelsTemplate("noapi", "NoAPI", ""))
	testenv.Create(t, c, ct, waitTimeout)
	con := testenv.Parse(t, labelsConstraint("NoAPI", "no-api", `["default"]`, "owner", "deny"))
	testenv.Create(t, c, con, waitTimeout)
	eventually(t, "the template to say why it has no policy", func(ctx context.Context) error {
		ct, err := getObjectFrom(ctx, c, "templates.gatekeeper.sh/v1", "ConstraintTemplate", "noapi")
		if err != nil {
			return err
		}
		e := testenv.ByPod(ct, podID)
		s, _ := e["vapGenerationStatus"].(map[string]any)
		if w, _ := s["warning"].(string); s["state"] != vap.StateError || !strings.Contains(w, "validatingAdmissionPolicy API is not enabled") || e["errors"] != nil {
			return fmt.Errorf("byPod entry %v", e)
		}
		return nil
	})
	eventually(t, "the constraint to be enforced, and to say why it has no binding", func(ctx context.Context) error {
		e, err := testenv.ConstraintEntry(ctx, c, "NoAPI", "no-api", podID)
		if err != nil {
			return err
		}
		eps, _ := e["enforcementPointsStatus"].([]any)
		if e["enforced"] != true || len(eps) != 1 || !strings.Contains(fmt.Sprint(eps[0]), "cannot generate ValidatingAdmissionPolicyBinding: validatingAdmissionPolicy API is not enabled") {
			return fmt.Errorf("byPod entry %v", e)
		}
		return nil
	})
}
