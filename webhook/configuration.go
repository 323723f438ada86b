package webhook

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	"github.com/portcullis-dev/portcullis/expansion"
)

// Webhook names, Gatekeeper's for the two it has.
const (
	WebhookName       = "validation.gatekeeper.sh"
	LabelWebhookName  = "check-ignore-label.gatekeeper.sh"
	PolicyWebhookName = "check-policy.gatekeeper.sh"
)

const (
	// fieldManager owns what the manager applies to the configuration.
	fieldManager = "portcullis-webhook"
	// servicePort is the Service's port, forwarding to --port.
	servicePort = 443
	// metadataNameLabel is set by the API server on every namespace.
	metadataNameLabel = "kubernetes.io/metadata.name"
)

// Subresources is what /v1/admit sees besides every resource: "*" does not
// match subresources. pods/exec, pods/attach and the other CONNECT ones
// only reach it with --enable-connect-operations.
var Subresources = []string{
	"*/scale",
	"pods/attach",
	"pods/binding",
	"pods/ephemeralcontainers",
	"pods/eviction",
	"pods/exec",
	"pods/portforward",
	"pods/proxy",
	"pods/resize",
	"nodes/proxy",
	"services/proxy",
	"services/status",
}

// Configuration is the ValidatingWebhookConfiguration the options
// describe. caBundle nil leaves the caBundle fields out.
func (o Options) Configuration(caBundle []byte) *admissionregistrationv1.ValidatingWebhookConfiguration {
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	if o.EnableDeleteOperations {
		ops = append(ops, admissionregistrationv1.Delete)
	}
	if o.EnableConnectOperations {
		ops = append(ops, admissionregistrationv1.Connect)
	}
	policy := admissionregistrationv1.FailurePolicyType(o.FailurePolicy)
	exemptSelector := []metav1.LabelSelectorRequirement{{Key: IgnoreLabel, Operator: metav1.LabelSelectorOpDoesNotExist}}
	if o.Namespace != "" {
		exemptSelector = append(exemptSelector, metav1.LabelSelectorRequirement{
			Key: metadataNameLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{o.Namespace},
		})
	}
	common := func(name, path string, fp admissionregistrationv1.FailurePolicyType) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:                    name,
			ClientConfig:            o.clientConfig(path, caBundle),
			FailurePolicy:           new(fp),
			MatchPolicy:             ptr.To(admissionregistrationv1.Exact),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          new(o.TimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
		}
	}

	admit := common(WebhookName, AdmitPath, policy)
	admit.Rules = []admissionregistrationv1.RuleWithOperations{{
		Operations: ops,
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{"*"},
			APIVersions: []string{"*"},
			Resources:   append([]string{"*"}, Subresources...),
			Scope:       ptr.To(admissionregistrationv1.AllScopes),
		},
	}}
	admit.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: exemptSelector}

	// Fails closed, as in Gatekeeper: otherwise anyone could label a
	// namespace exempt while the webhook is down.
	label := common(LabelWebhookName, AdmitLabelPath, admissionregistrationv1.Fail)
	label.Rules = []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{""},
			APIVersions: []string{"*"},
			Resources:   []string{"namespaces"},
			Scope:       ptr.To(admissionregistrationv1.ClusterScope),
		},
	}}

	pol := common(PolicyWebhookName, AdmitPolicyPath, policy)
	pol.Rules = []admissionregistrationv1.RuleWithOperations{
		{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{"templates.gatekeeper.sh"},
				APIVersions: []string{"*"},
				Resources:   []string{"constrainttemplates"},
				Scope:       ptr.To(admissionregistrationv1.ClusterScope),
			},
		},
		{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{ConstraintGroup},
				APIVersions: []string{"*"},
				Resources:   []string{"*"},
				Scope:       ptr.To(admissionregistrationv1.ClusterScope),
			},
		},
		{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{mutationsv1.Group},
				APIVersions: []string{"*"},
				Resources:   []string{"assign", "assignimage", "assignmetadata", "modifyset"},
				Scope:       ptr.To(admissionregistrationv1.ClusterScope),
			},
		},
		{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{expansion.Group},
				APIVersions: []string{"*"},
				Resources:   []string{"expansiontemplate"},
				Scope:       ptr.To(admissionregistrationv1.ClusterScope),
			},
		},
	}

	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   o.ConfigurationName,
			Labels: map[string]string{"app.kubernetes.io/name": "portcullis", "app.kubernetes.io/managed-by": fieldManager},
		},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{admit, label, pol},
	}
}

// clientConfig reaches the webhook by URL with --webhook-url-host, by
// Service otherwise.
func (o Options) clientConfig(path string, caBundle []byte) admissionregistrationv1.WebhookClientConfig {
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: caBundle}
	if o.URLHost != "" {
		cc.URL = new("https://" + net.JoinHostPort(o.URLHost, strconv.Itoa(o.Port)) + path)
		return cc
	}
	cc.Service = &admissionregistrationv1.ServiceReference{
		Namespace: o.Namespace,
		Name:      o.ServiceName,
		Path:      new(path),
		Port:      new(int32(servicePort)),
	}
	return cc
}

// configurationApplier applies the webhook configuration with server-side
// apply once the server answers, and again when the CA bundle changes. It
// owns only what it sets: a caBundle written by cert-controller or
// cert-manager is left alone.
type configurationApplier struct {
	client  client.Client
	opts    Options
	certs   *certSource
	started healthz.Checker
	log     logr.Logger
}

// NeedLeaderElection is false: every replica applies the same content,
// which changes nothing after the first.
func (a *configurationApplier) NeedLeaderElection() bool { return false }

// Start applies the configuration, then re-applies it on CA changes.
func (a *configurationApplier) Start(ctx context.Context) error {
	select {
	case <-a.certs.ready:
	case <-ctx.Done():
		return nil
	}
	// Registering before the server answers would fail requests.
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		return a.started(nil) == nil, nil
	}); err != nil {
		return nil // stopped first
	}
	for {
		a.applyUntilDone(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-a.certs.changed: // a nil channel never receives
		}
	}
}

func (a *configurationApplier) applyUntilDone(ctx context.Context) {
	_ = wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := a.apply(ctx); err != nil {
			a.log.Error(err, "Applying the webhook configuration, will retry")
			return false, nil
		}
		return true, nil
	})
}

func (a *configurationApplier) apply(ctx context.Context) error {
	if a.opts.mutating() {
		if err := a.applyMutating(ctx); err != nil {
			return err
		}
	}
	if !a.opts.Enabled {
		return nil
	}
	vwc := a.opts.Configuration(a.certs.bundle())
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(vwc)
	if err != nil {
		return fmt.Errorf("converting the webhook configuration: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	if err := a.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying ValidatingWebhookConfiguration %s: %w", vwc.Name, err)
	}
	a.log.Info("Applied the webhook configuration", "name", vwc.Name, "failurePolicy", a.opts.FailurePolicy,
		"url", vwc.Webhooks[0].ClientConfig.URL != nil, "caBundle", len(vwc.Webhooks[0].ClientConfig.CABundle) > 0)
	return nil
}
