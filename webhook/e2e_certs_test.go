package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis-dev/portcullis/internal/loopback"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/manager/managertest"
	"github.com/portcullis-dev/portcullis/webhook"
)

// TestEngineErrorFailsOpen: an engine error answers HTTP 500, which the
// API server, under failurePolicy Ignore, lets through; it is counted.
func TestEngineErrorFailsOpen(t *testing.T) {
	needEnv(t)
	createPolicy(t, badMsgTemplate)
	createPolicy(t, constraint("K8sBadMsg", "bad-msg", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Namespace]}]\n    namespaces: [\"acc-err-*\"]\n"))
	before := counter(t, ctrlmetrics.Registry, "error")
	eventually(t, "an engine error to be counted and the request let through", func(ctx context.Context) error {
		if err := env.Client.Create(ctx, namespace("acc-err-1", nil), client.DryRunAll); err != nil {
			return fmt.Errorf("refused: %w", err)
		}
		if n := counter(t, ctrlmetrics.Registry, "error"); n <= before {
			return fmt.Errorf("error count %v, not above %v (constraint not loaded yet?)", n, before)
		}
		return nil
	})
	if !hook.logs.Contains("Could not judge an admission request", "acc-err-1") {
		t.Error("the engine error was not logged")
	}
}

// TestCertRotator runs the webhook as in a cluster: cert-controller keeps
// the CA and serving certificate in a Secret, which this test copies to
// --cert-dir as the kubelet would mount it, and injects the CA into the
// configuration, which refers to the Service.
func TestCertRotator(t *testing.T) {
	needEnv(t)
	const ns = "rotator-test"
	mustCreate(t, env.Client, namespace(ns, nil))
	// No Secret: the manager creates it, and cert-controller fills it.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: webhook.DefaultCertSecretName, Namespace: ns}}

	mopts := manager.NewOptions()
	mopts.PodID, mopts.Namespace = "rotator-e2e", ns
	mopts.MetricsBindAddress = "0"
	probes, err := loopback.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	mopts.HealthProbeBindAddress = probes
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// In-cluster mode: no --webhook-url-host, certificates rotated in the
	// Secret of --namespace.
	wopts := &mopts.Webhook
	wopts.Port, wopts.Host = port, "127.0.0.1"
	wopts.CertDir = t.TempDir()
	wopts.ConfigurationName = "rotator-test"
	wopts.MutatingConfigurationName = "rotator-test"
	m, err := managertest.Start(env.Config, mopts, nil)
	if err != nil {
		t.Fatal(err)
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: wopts.ConfigurationName}}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: wopts.MutatingConfigurationName}}
	t.Cleanup(func() {
		// Its label webhook fails closed and its Service does not exist:
		// remove it before anything else creates a namespace.
		if err := env.Client.Delete(context.Background(), vwc); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting the configuration: %v", err)
		}
		if err := env.Client.Delete(context.Background(), mwc); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting the mutating configuration: %v", err)
		}
		if err := m.Stop(); err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	// The kubelet's part: project the Secret into --cert-dir.
	var ca []byte
	eventually(t, "cert-controller to fill the Secret", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
			return err
		}
		for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
			if len(secret.Data[k]) == 0 {
				return fmt.Errorf("no %s in the Secret", k)
			}
		}
		for k, v := range secret.Data {
			if err := os.WriteFile(filepath.Join(wopts.CertDir, k), v, 0o600); err != nil {
				return err
			}
		}
		ca = secret.Data["ca.crt"]
		return nil
	})

	eventually(t, "the configuration to refer to the Service, with the CA injected", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(vwc), vwc); err != nil {
			return err
		}
		for _, w := range vwc.Webhooks {
			svc := w.ClientConfig.Service
			if svc == nil || svc.Name != webhook.DefaultServiceName || svc.Namespace != ns || w.ClientConfig.URL != nil {
				return fmt.Errorf("%s: clientConfig %+v", w.Name, w.ClientConfig)
			}
			if !bytes.Equal(w.ClientConfig.CABundle, ca) {
				return fmt.Errorf("%s: caBundle is not the Secret's CA", w.Name)
			}
		}
		return nil
	})

	eventually(t, "the mutating configuration to refer to the Service, with the CA injected", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mwc), mwc); err != nil {
			return err
		}
		w := mwc.Webhooks[0]
		if svc := w.ClientConfig.Service; svc == nil || svc.Name != webhook.DefaultServiceName || svc.Namespace != ns || *svc.Path != webhook.MutatePath {
			return fmt.Errorf("%s: clientConfig %+v", w.Name, w.ClientConfig)
		}
		if !bytes.Equal(w.ClientConfig.CABundle, ca) {
			return fmt.Errorf("%s: caBundle is not the Secret's CA", w.Name)
		}
		return nil
	})

	eventually(t, "/readyz, then the rotated certificate to be served", func(ctx context.Context) error {
		resp, err := http.Get("http://" + probes + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(ca)
		name := webhook.DefaultServiceName + "." + ns + ".svc"
		conn, err := (&tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: name}}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return fmt.Errorf("TLS as %s with the Secret's CA: %w", name, err)
		}
		return conn.Close()
	})
	if !strings.Contains(string(secret.Data["ca.crt"]), "BEGIN CERTIFICATE") {
		t.Error("the Secret's CA is not PEM")
	}
}
