package manager

import (
	"context"
	"fmt"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	"github.com/portcullis-dev/portcullis/controllers"
	"github.com/portcullis-dev/portcullis/vap"
	"github.com/portcullis-dev/portcullis/webhook"
)

// newVAP builds the generator of ValidatingAdmissionPolicies and bindings,
// on a replica with --operation=generate; nil on the others, as in
// Gatekeeper.
func (m *Manager) newVAP() (*vap.Reconciler, error) {
	if !m.opts.generates() {
		return nil, vap.RegisterMetrics()
	}
	dc, err := discovery.NewDiscoveryClientForConfig(m.cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a discovery client: %w", err)
	}
	r := &vap.Reconciler{
		Client:       m.mgr.GetClient(),
		APIReader:    m.mgr.GetAPIReader(),
		Scheme:       m.mgr.GetScheme(),
		Discovery:    dc,
		FieldManager: controllers.FieldManager,
		Options:      m.opts.VAP,
		Namespace:    m.opts.Namespace,
		Exempt:       m.exemptNamespaces(),
		Scope:        m.vapScope,
		Log:          m.mgr.GetLogger().WithName("vap"),

		WebhookConfiguration: m.opts.Webhook.ConfigurationName,
	}
	if err := r.Setup(); err != nil {
		return nil, fmt.Errorf("setting up the ValidatingAdmissionPolicy generation: %w", err)
	}
	return r, nil
}

// exemptNamespaces are the namespaces the webhook never judges, as
// wildcards: --exempt-namespace, Portcullis's own, each
// --exempt-namespace-prefix followed by * and each
// --exempt-namespace-suffix preceded by *.
func (m *Manager) exemptNamespaces() []string {
	w := m.opts.Webhook
	out := append([]string{m.opts.Namespace}, w.ExemptNamespaces...)
	for _, p := range w.ExemptNamespacePrefixes {
		out = append(out, p+"*")
	}
	for _, s := range w.ExemptNamespaceSuffixes {
		out = append(out, "*"+s)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// vapScope is what the webhook judges: the rules, selectors and match
// conditions of the validation.gatekeeper.sh webhook of its
// ValidatingWebhookConfiguration, as Gatekeeper reads them (deployed by a
// chart, it may differ from this replica's flags), else as this replica
// would configure it; and the namespaces the Config excludes from it.
func (m *Manager) vapScope(ctx context.Context) *vap.Scope {
	o := m.opts.Webhook
	o.Namespace = m.opts.Namespace
	cfg := o.Configuration(nil)
	live := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	err := m.mgr.GetClient().Get(ctx, client.ObjectKey{Name: o.ConfigurationName}, live)
	switch {
	case err == nil:
		cfg = live
	case !apierrors.IsNotFound(err):
		log.FromContext(ctx).Error(err, "Reading the webhook configuration; the policies follow the flags", "configuration", o.ConfigurationName)
	}
	for _, w := range cfg.Webhooks {
		if w.Name != webhook.WebhookName {
			continue
		}
		return &vap.Scope{
			Rules:              w.Rules,
			NamespaceSelector:  w.NamespaceSelector,
			ObjectSelector:     w.ObjectSelector,
			MatchPolicy:        w.MatchPolicy,
			MatchConditions:    w.MatchConditions,
			ExcludedNamespaces: m.sync.ExcludedNamespaces(configv1alpha1.ProcessWebhook),
		}
	}
	return nil
}
