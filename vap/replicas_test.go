package vap_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/vap"
)

// TestOnlyGenerateReplicas runs a replica with --operation=generate and
// one without: only the first generates, and reports it in its status
// entries.
func TestOnlyGenerateReplicas(t *testing.T) {
	needEnv(t)
	startManager(t, "pod-generate", func(o *manager.Options) { o.Operations = []manager.Operation{manager.OperationGenerate} })
	startManager(t, "pod-audit", func(o *manager.Options) { o.Operations = []manager.Operation{manager.OperationAudit} })
	objects.Apply(t, labelsTemplate("replicas", "Replicas", ""))
	objects.Apply(t, labelsConstraint("Replicas", "replicas", `["default"]`, "owner", "deny"))

	policyState(t, "replicas", "pod-generate", vap.StateGenerated)
	bindingState(t, "Replicas", "replicas", "pod-generate", vap.StateWaiting)
	eventually(t, "the other replica to report no generation", func(ctx context.Context) error {
		s, err := vapStatus(ctx, "replicas", "pod-audit")
		if err != nil || s != nil {
			return fmt.Errorf("vapGenerationStatus %v (%w)", s, err)
		}
		if err := testenv.ConstraintEnforced(ctx, env.Client, "Replicas", "replicas", "pod-audit"); err != nil {
			return err
		}
		b, err := bindingStatus(ctx, "Replicas", "replicas", "pod-audit")
		if err != nil || b != nil {
			return fmt.Errorf("enforcementPointsStatus vap.k8s.io %v (%w)", b, err)
		}
		return nil
	})
}
