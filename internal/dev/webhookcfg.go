package dev

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/portcullis-dev/portcullis/webhook"
)

// removeWebhookConfigurations deletes the validating and mutating webhook
// configurations of Portcullis: those labeled app.kubernetes.io/name=
// portcullis, those named portcullis-*, and the one named name. Run at
// start, before anything else uses the API server, they are a dead run's
// (which would refuse every namespace, failing closed); run at exit, this
// run's. It returns the names removed.
func removeWebhookConfigurations(ctx context.Context, cs kubernetes.Interface, name string) ([]string, error) {
	ours := func(m metav1.ObjectMeta) bool {
		return m.Name == name || strings.HasPrefix(m.Name, "portcullis-") || m.Labels["app.kubernetes.io/name"] == "portcullis"
	}
	var removed []string
	vwcs, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing validating webhook configurations: %w", err)
	}
	for _, c := range vwcs.Items {
		if !ours(c.ObjectMeta) {
			continue
		}
		err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, c.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return removed, fmt.Errorf("deleting ValidatingWebhookConfiguration %s: %w", c.Name, err)
		}
		removed = append(removed, "ValidatingWebhookConfiguration "+c.Name)
	}
	mwcs, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return removed, fmt.Errorf("listing mutating webhook configurations: %w", err)
	}
	for _, c := range mwcs.Items {
		if !ours(c.ObjectMeta) {
			continue
		}
		err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, c.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return removed, fmt.Errorf("deleting MutatingWebhookConfiguration %s: %w", c.Name, err)
		}
		removed = append(removed, "MutatingWebhookConfiguration "+c.Name)
	}
	return removed, nil
}

// probeNamespace returns the name of the namespace the webhook probe
// dry-runs: one that is not exempt, so that /v1/admitlabel refuses it the
// ignore label.
func probeNamespace(opts webhook.Options, managerNamespace string) string {
	ex := webhook.NewExemptions(append(slices.Clone(opts.ExemptNamespaces), managerNamespace), opts.ExemptNamespacePrefixes, opts.ExemptNamespaceSuffixes)
	name := "portcullis-dev-webhook-probe"
	for i := 0; ex.Exempt(name) && i < 100; i++ {
		name = fmt.Sprintf("webhook-probe-%d-x", i)
	}
	return name
}

// webhookProbe is a check that passes once the API server calls the
// webhook and it answers. It dry-runs the creation of a namespace carrying
// admission.gatekeeper.sh/ignore: the webhook configuration sends that
// request to /v1/admitlabel (failure policy Fail) and, because of the
// label, never to /v1/admit, so no constraint of the user can refuse it.
// /v1/admitlabel refuses the label on a namespace that is not exempt: that
// refusal is the answer waited for. Nothing is stored.
func webhookProbe(cs kubernetes.Interface, name string) check {
	return func(ctx context.Context) (bool, string, error) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{webhook.IgnoreLabel: "true"}}}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case err == nil:
			return false, "the API server does not call the webhook yet (its configuration is not registered)", nil
		case strings.Contains(err.Error(), fmt.Sprintf("admission webhook %q denied the request", webhook.LabelWebhookName)):
			return true, "", nil
		default:
			return false, "the API server cannot use the webhook yet: " + err.Error(), nil
		}
	}
}
