package manager_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/manager"
)

// TestOperationWithoutGenerate checks a replica given --operation without
// generate, as the controller-manager of Gatekeeper's chart: it never
// creates a template's CRD, is ready without it (the template is compiled
// and no constraint can exist yet), and loads the template once a replica
// with generate has created the CRD.
func TestOperationWithoutGenerate(t *testing.T) {
	const name = "k8sleavecrds"
	apply(t, requiredLabels("v1", "K8sLeaveCRDs"))
	crdName := name + ".constraints.gatekeeper.sh"
	crdAbsent := func(ctx context.Context) error {
		err := env.Client.Get(ctx, client.ObjectKey{Name: crdName}, &apiextensionsv1.CustomResourceDefinition{})
		switch {
		case err == nil:
			return fmt.Errorf("CRD %s exists", crdName)
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("getting CRD %s: %w", crdName, err)
		}
		return nil
	}
	if err := crdAbsent(t.Context()); err != nil {
		t.Fatal(err)
	}

	webhookOnly := startManager(t, startOpts{podID: "webhook-only", options: func(o *manager.Options) {
		o.Operations = []manager.Operation{manager.OperationWebhook}
	}})
	eventually(t, "the replica without generate to be ready", func(context.Context) (bool, error) {
		err := webhookOnly.Ready()
		return err == nil, err
	})
	time.Sleep(2 * time.Second) // time enough to create the CRD, were it to
	if err := crdAbsent(t.Context()); err != nil {
		t.Fatalf("the replica without generate wrote the CRD: %v", err)
	}

	generator := startManager(t, startOpts{podID: "generator"})
	eventually(t, "both replicas to load the template", func(ctx context.Context) (bool, error) {
		for _, pod := range []string{generator.podID, webhookOnly.podID} {
			if ok, err := templateLoaded(ctx, name, pod); !ok {
				return false, err
			}
		}
		return true, nil
	})
}
