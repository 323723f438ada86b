package webhook

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MutationWebhookName is the mutating webhook's name, Gatekeeper's.
const MutationWebhookName = "mutation.gatekeeper.sh"

// Defaults of the mutating webhook, those of Gatekeeper's chart.
const (
	DefaultMutatingConfigurationName = "portcullis-mutating-webhook-configuration"
	DefaultMutationTimeoutSeconds    = 1
)

// MutationSubresources are the subresources /v1/mutate sees besides every
// resource, as Gatekeeper's chart lists them.
var MutationSubresources = []string{
	"pods/ephemeralcontainers", "pods/exec", "pods/log", "pods/eviction", "pods/portforward", "pods/proxy",
	"pods/attach", "pods/binding", "deployments/scale", "replicasets/scale", "statefulsets/scale",
	"replicationcontrollers/scale", "services/proxy", "nodes/proxy", "services/status",
}

// MutatingConfiguration is the MutatingWebhookConfiguration the options
// describe, with the defaults of Gatekeeper's chart: CREATE and UPDATE on
// every resource, failurePolicy Ignore, reinvocationPolicy Never, the
// ignore label and the manager's namespace skipped. caBundle nil leaves
// the caBundle out.
func (o Options) MutatingConfiguration(caBundle []byte) *admissionregistrationv1.MutatingWebhookConfiguration {
	selector := []metav1.LabelSelectorRequirement{{Key: IgnoreLabel, Operator: metav1.LabelSelectorOpDoesNotExist}}
	if o.Namespace != "" {
		selector = append(selector, metav1.LabelSelectorRequirement{
			Key: metadataNameLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{o.Namespace},
		})
	}
	wh := admissionregistrationv1.MutatingWebhook{
		Name:                    MutationWebhookName,
		ClientConfig:            o.clientConfig(MutatePath, caBundle),
		FailurePolicy:           new(admissionregistrationv1.FailurePolicyType(o.MutationFailurePolicy)),
		MatchPolicy:             ptr.To(admissionregistrationv1.Exact),
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          new(o.MutationTimeoutSeconds),
		ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		AdmissionReviewVersions: []string{"v1"},
		NamespaceSelector:       &metav1.LabelSelector{MatchExpressions: selector},
		ObjectSelector:          &metav1.LabelSelector{},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{"*"},
				APIVersions: []string{"*"},
				Resources:   append([]string{"*"}, MutationSubresources...),
				Scope:       ptr.To(admissionregistrationv1.AllScopes),
			},
		}},
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   o.MutatingConfigurationName,
			Labels: map[string]string{"app.kubernetes.io/name": "portcullis", "app.kubernetes.io/managed-by": fieldManager},
		},
		Webhooks: []admissionregistrationv1.MutatingWebhook{wh},
	}
}

// applyMutating applies the MutatingWebhookConfiguration with server-side
// apply, owning only what it sets.
func (a *configurationApplier) applyMutating(ctx context.Context) error {
	mwc := a.opts.MutatingConfiguration(a.certs.bundle())
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(mwc)
	if err != nil {
		return fmt.Errorf("converting the mutating webhook configuration: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	if err := a.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying MutatingWebhookConfiguration %s: %w", mwc.Name, err)
	}
	a.log.Info("Applied the mutating webhook configuration", "name", mwc.Name, "failurePolicy", a.opts.MutationFailurePolicy)
	return nil
}
