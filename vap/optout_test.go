package vap_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/vap"
)

// TestFlagsOff: with --default-create-vap-for-templates=false and
// --default-create-vap-binding-for-constraints=false nothing is generated,
// and a policy of a template's name is deleted; a template with
// generateVAP: true gets its policy all the same.
func TestFlagsOff(t *testing.T) {
	needEnv(t)
	const podID = "pod-flags-off"
	// A policy left by an earlier run, when generation was on.
	leftover := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "gatekeeper-flagsoff"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Ignore),
			Validations:   []admissionregistrationv1.Validation{{Expression: "true"}},
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				},
			}}},
		},
	}
	if err := env.Client.Create(t.Context(), leftover); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), leftover) })
	startManager(t, podID, func(o *manager.Options) { o.VAP.CreatePolicies, o.VAP.CreateBindings = false, false })
	objects.Apply(t, labelsTemplate("flagsoff", "FlagsOff", ""))
	objects.Apply(t, labelsTemplate("flagsoffoptin", "FlagsOffOptIn", "        generateVAP: true\n"))
	objects.Apply(t, labelsConstraint("FlagsOff", "flags-off", `["default"]`, "owner", "deny"))
	objects.Apply(t, labelsConstraint("FlagsOffOptIn", "flags-off", `["default"]`, "owner", "deny"))

	eventually(t, "the template to report no policy", func(ctx context.Context) error {
		s, err := vapStatus(ctx, "flagsoff", podID)
		if err != nil || s != nil {
			return fmt.Errorf("vapGenerationStatus %v (%w)", s, err)
		}
		return gone(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{}, "gatekeeper-flagsoff")
	})
	policyState(t, "flagsoffoptin", podID, vap.StateGenerated)
	for _, kind := range []string{"FlagsOff", "FlagsOffOptIn"} {
		noBinding(t, kind, "flags-off", podID)
	}
}

// TestOptOut: with Gatekeeper's default flags, a template with
// generateVAP: false gets no policy, and its constraints no binding (their
// status says why); a scoped constraint gets a binding only when one of
// its actions names vap.k8s.io (or *), with those actions.
func TestOptOut(t *testing.T) {
	needEnv(t)
	const podID = "pod-opt-out"
	startManager(t, podID, nil)
	objects.Apply(t, labelsTemplate("optout", "OptOut", "        generateVAP: false\n"))
	objects.Apply(t, labelsTemplate("scoped", "Scoped", ""))
	objects.Apply(t, labelsConstraint("OptOut", "c", `["default"]`, "owner", "deny"))
	scoped := func(name, actions string) {
		objects.Apply(t, labelsConstraint("Scoped", name, `["default"]`, "owner", "scoped\n  scopedEnforcementActions:\n"+actions))
	}
	scoped("webhook-only", "  - action: deny\n    enforcementPoints: [{name: validation.gatekeeper.sh}]\n")
	scoped("vap-deny", "  - action: deny\n    enforcementPoints: [{name: vap.k8s.io}, {name: validation.gatekeeper.sh}]\n  - action: warn\n    enforcementPoints: [{name: audit.gatekeeper.sh}]\n")
	scoped("all-dryrun", "  - action: dryrun\n    enforcementPoints: [{name: \"*\"}]\n")

	eventually(t, "the opted-out template to report no policy", func(ctx context.Context) error {
		s, err := vapStatus(ctx, "optout", podID)
		if err != nil || s != nil {
			return fmt.Errorf("vapGenerationStatus %v (%w)", s, err)
		}
		return gone(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{}, "gatekeeper-optout")
	})
	s := bindingState(t, "OptOut", "c", podID, vap.StateError)
	if msg, _ := s["message"].(string); msg != "cannot generate ValidatingAdmissionPolicyBinding: conditions are not satisfied to generate ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding" {
		t.Errorf("message %q", msg)
	}
	if err := gone(t.Context(), &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, "gatekeeper-optout-c"); err != nil {
		t.Error(err)
	}

	policyState(t, "scoped", podID, vap.StateGenerated)
	noBinding(t, "Scoped", "webhook-only", podID)
	for name, want := range map[string]admissionregistrationv1.ValidationAction{"vap-deny": admissionregistrationv1.Deny, "all-dryrun": admissionregistrationv1.Audit} {
		bindingState(t, "Scoped", name, podID, vap.StateGenerated)
		b, err := getBinding(t.Context(), vap.BindingName("Scoped", name))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(b.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{want}) {
			t.Errorf("%s: validationActions %v, want [%s]", name, b.Spec.ValidationActions, want)
		}
	}

	// Opting out later deletes the binding.
	c, err := getObject(t.Context(), "constraints.gatekeeper.sh/v1beta1", "Scoped", "vap-deny")
	if err != nil {
		t.Fatal(err)
	}
	c.Object["spec"].(map[string]any)["scopedEnforcementActions"] = []any{map[string]any{
		"action": "deny", "enforcementPoints": []any{map[string]any{"name": "validation.gatekeeper.sh"}},
	}}
	if err := env.Client.Update(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	noBinding(t, "Scoped", "vap-deny", podID)
}

// noBinding waits until podID reports the constraint's generation enforced
// with no vap.k8s.io status, and checks that it has no binding.
func noBinding(t *testing.T, kind, name, podID string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s %s to be enforced with no binding", kind, name), func(ctx context.Context) error {
		s, err := bindingStatus(ctx, kind, name, podID)
		if err != nil || s != nil {
			return fmt.Errorf("enforcementPointsStatus vap.k8s.io %v (%w)", s, err)
		}
		return gone(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, vap.BindingName(kind, name))
	})
}
