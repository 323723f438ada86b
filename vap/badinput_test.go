package vap_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/manager/managertest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/vap"
)

// TestBadInput: a template whose policy the API server refuses, templates
// whose operations the webhook does not all judge, and a constraint whose
// match has no CEL equivalent. Each still works through the webhook, and
// its status says why no policy or binding was generated.
func TestBadInput(t *testing.T) {
	needEnv(t)
	const podID = "pod-bad-input"
	opts := managertest.Options(podID)
	opts.Webhook.Enabled = true
	opts.VAP = vap.NewOptions()
	w, err := managertest.StartWebhook(env.Config, env.Client, opts, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	managers.Add(1)
	t.Cleanup(func() {
		managers.Add(-1)
		if err := w.Stop(); err != nil {
			t.Error(err)
		}
	})
	testenv.EnsureNamespaces(t, env.Client, "vap-bad")

	// The API server refuses a validation message with a line break;
	// the engine takes it.
	objects.Apply(t, strings.Replace(labelsTemplate("badmessage", "BadMessage", ""),
		`          messageExpression: "'missing required labels: ' + variables.params.labels.join(', ')"`,
		`          message: "labels are missing\nsee the policy"`, 1))
	objects.Apply(t, labelsConstraint("BadMessage", "bad-message", `["vap-bad"]`, "owner", "deny"))
	s := policyState(t, "badmessage", podID, vap.StateError)
	if msg, _ := s["warning"].(string); !strings.Contains(msg, "ValidatingAdmissionPolicy is not generated: the API server refused ValidatingAdmissionPolicy gatekeeper-badmessage") ||
		!strings.Contains(msg, "line breaks") {
		t.Errorf("warning %q, want the API server's refusal", msg)
	}
	if err := gone(t.Context(), &admissionregistrationv1.ValidatingAdmissionPolicy{}, "gatekeeper-badmessage"); err != nil {
		t.Error(err)
	}
	testenv.WaitEnforced(t, testenv.Poll{Timeout: waitTimeout}, env.Client, "BadMessage", "bad-message", podID)
	eventually(t, "the webhook to refuse an unlabeled ConfigMap", func(ctx context.Context) error {
		err := env.Client.Create(ctx, configMap("vap-bad", "bad", nil), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "[bad-message] labels are missing") {
			return fmt.Errorf("want the webhook's refusal, got %v", err)
		}
		return nil
	})

	// No operation in common with the webhook's: no policy.
	objects.Apply(t, strings.Replace(labelsTemplate("deleteonly", "DeleteOnly", ""),
		"  - target: admission.k8s.gatekeeper.sh\n", "  - target: admission.k8s.gatekeeper.sh\n    operations: [DELETE]\n", 1))
	s = policyState(t, "deleteonly", podID, vap.StateError)
	if msg, _ := s["warning"].(string); !strings.Contains(msg, "no matching operations between webhook and constraint template") {
		t.Errorf("warning %q", msg)
	}
	// Some in common: a policy of those.
	objects.Apply(t, strings.Replace(labelsTemplate("createdelete", "CreateDelete", ""),
		"  - target: admission.k8s.gatekeeper.sh\n", "  - target: admission.k8s.gatekeeper.sh\n    operations: [CREATE, DELETE]\n", 1))
	s = policyState(t, "createdelete", podID, vap.StateGenerated)
	if s["warning"] != "operations mismatch between webhook and constraint template" {
		t.Errorf("warning %v", s["warning"])
	}
	p, err := getPolicy(t.Context(), "gatekeeper-createdelete")
	if err != nil {
		t.Fatal(err)
	}
	if ops := p.Spec.MatchConstraints.ResourceRules[0].Operations; len(ops) != 1 || ops[0] != admissionregistrationv1.Create {
		t.Errorf("operations %v, want [CREATE]", ops)
	}

	// A match the API server cannot express: no binding, at once.
	objects.Apply(t, strings.Replace(labelsConstraint("CreateDelete", "generated-only", `["vap-bad"]`, "owner", "deny"),
		"  match:\n", "  match:\n    source: Generated\n", 1))
	s = bindingState(t, "CreateDelete", "generated-only", podID, vap.StateError)
	if msg, _ := s["message"].(string); !strings.Contains(msg, "no ValidatingAdmissionPolicy equivalent") || !strings.Contains(msg, "spec.match.source") {
		t.Errorf("message %q", msg)
	}
	if err := gone(t.Context(), &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, vap.BindingName("CreateDelete", "generated-only")); err != nil {
		t.Error(err)
	}
	checkMetric(t, "gatekeeper_validating_admission_policies", "error", 2)
}
