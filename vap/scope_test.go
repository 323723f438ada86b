package vap_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/vap"
	"github.com/portcullis-dev/portcullis/webhook"
)

// TestLiveWebhookScope: a policy follows the webhook's
// ValidatingWebhookConfiguration as deployed (by a chart, say), not the
// flags of the replica that generates it, and follows its changes.
func TestLiveWebhookScope(t *testing.T) {
	needEnv(t)
	const podID = "pod-live-scope"
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: webhook.DefaultConfigurationName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    webhook.WebhookName,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: new("https://127.0.0.1:1/v1/admit")},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			// Nothing the tests create reaches this closed port.
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.com"}, APIVersions: []string{"v1"}, Resources: []string{"widgets"}},
			}},
			ObjectSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{"policy": "on"}},
			MatchConditions: []admissionregistrationv1.MatchCondition{{Name: "not-leases", Expression: "request.resource.resource != 'leases'"}},
		}},
	}
	if err := env.Client.Create(t.Context(), vwc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), vwc) })
	startManager(t, podID, nil)
	objects.Apply(t, labelsTemplate("livescope", "LiveScope", ""))
	policyState(t, "livescope", podID, vap.StateGenerated)
	eventually(t, "the policy to follow the webhook configuration", func(ctx context.Context) error {
		p, err := getPolicy(ctx, "gatekeeper-livescope")
		if err != nil {
			return err
		}
		mc := p.Spec.MatchConstraints
		names := make([]string, len(p.Spec.MatchConditions))
		for i, c := range p.Spec.MatchConditions {
			names[i] = c.Name
		}
		if mc.ObjectSelector.MatchLabels["policy"] != "on" || !slices.Equal(mc.ResourceRules[0].Resources, []string{"widgets"}) ||
			!slices.Contains(names, "not-leases") {
			return fmt.Errorf("matchConstraints %+v, match conditions %v", mc, names)
		}
		return nil
	})

	// A change of the configuration reaches the policy.
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(vwc), vwc); err != nil {
		t.Fatal(err)
	}
	vwc.Webhooks[0].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"policy": "strict"}}
	if err := env.Client.Update(t.Context(), vwc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the policy to follow the changed configuration", func(ctx context.Context) error {
		p, err := getPolicy(ctx, "gatekeeper-livescope")
		if err != nil {
			return err
		}
		if sel := p.Spec.MatchConstraints.ObjectSelector; sel.MatchLabels["policy"] != "strict" {
			return fmt.Errorf("objectSelector %+v", sel)
		}
		return nil
	})
}
