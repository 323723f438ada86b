package webhook

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestPolicyWebhookMissing: /v1/admit checks policy objects itself unless
// the deployed configuration has the check-policy webhook; a
// configuration it cannot read (missing, forbidden) is taken for one
// without.
func TestPolicyWebhookMissing(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := admissionregistrationv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	config := func(name string, webhooks ...string) *admissionregistrationv1.ValidatingWebhookConfiguration {
		c := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for _, w := range webhooks {
			c.Webhooks = append(c.Webhooks, admissionregistrationv1.ValidatingWebhook{Name: w})
		}
		return c
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		config("portcullis", WebhookName, LabelWebhookName, PolicyWebhookName),
		config("gatekeeper", WebhookName, LabelWebhookName),
	).Build()
	for name, want := range map[string]bool{"portcullis": false, "gatekeeper": true, "missing": true} {
		if got := policyWebhookMissing(c, name)(t.Context()); got != want {
			t.Errorf("%s: check policies %v, want %v", name, got, want)
		}
	}
}
