package webhook_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/webhook"
)

func completed(t *testing.T, mod func(o *webhook.Options)) webhook.Options {
	t.Helper()
	o := webhook.NewOptions()
	o.Namespace = "portcullis-system"
	if mod != nil {
		mod(&o)
	}
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestConfiguration(t *testing.T) {
	t.Run("Gatekeeper's defaults", func(t *testing.T) {
		o := completed(t, nil)
		vwc := o.Configuration(nil)
		if vwc.Name != "portcullis-validating-webhook-configuration" || len(vwc.Webhooks) != 3 {
			t.Fatalf("name %s, %d webhooks", vwc.Name, len(vwc.Webhooks))
		}
		admit := vwc.Webhooks[0]
		if admit.Name != "validation.gatekeeper.sh" || *admit.FailurePolicy != admissionregistrationv1.Ignore ||
			*admit.TimeoutSeconds != 3 || *admit.SideEffects != admissionregistrationv1.SideEffectClassNone ||
			*admit.MatchPolicy != admissionregistrationv1.Exact {
			t.Errorf("admit webhook %+v", admit)
		}
		ops := admit.Rules[0].Operations
		if !slices.Equal(ops, []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}) {
			t.Errorf("operations %v", ops)
		}
		for _, r := range []string{"*", "pods/exec", "pods/attach", "*/scale", "pods/ephemeralcontainers"} {
			if !slices.Contains(admit.Rules[0].Resources, r) {
				t.Errorf("resources %v lack %s", admit.Rules[0].Resources, r)
			}
		}
		sel := admit.NamespaceSelector.MatchExpressions
		if len(sel) != 2 || sel[0].Key != webhook.IgnoreLabel || sel[0].Operator != "DoesNotExist" ||
			sel[1].Key != "kubernetes.io/metadata.name" || sel[1].Values[0] != "portcullis-system" {
			t.Errorf("namespaceSelector %+v", sel)
		}
		svc := admit.ClientConfig.Service
		if svc == nil || svc.Name != "portcullis-webhook-service" || svc.Namespace != "portcullis-system" || *svc.Path != "/v1/admit" ||
			*svc.Port != 443 || admit.ClientConfig.URL != nil || admit.ClientConfig.CABundle != nil {
			t.Errorf("clientConfig %+v", admit.ClientConfig)
		}
		if l := vwc.Webhooks[1]; l.Name != "check-ignore-label.gatekeeper.sh" || *l.FailurePolicy != admissionregistrationv1.Fail ||
			*l.ClientConfig.Service.Path != "/v1/admitlabel" || l.Rules[0].Resources[0] != "namespaces" {
			t.Errorf("label webhook %+v", l)
		}
		if p := vwc.Webhooks[2]; p.Name != "check-policy.gatekeeper.sh" || *p.ClientConfig.Service.Path != "/v1/admitpolicy" ||
			p.Rules[0].APIGroups[0] != "templates.gatekeeper.sh" || p.Rules[1].APIGroups[0] != "constraints.gatekeeper.sh" {
			t.Errorf("policy webhook %+v", p)
		}
	})
	t.Run("flags", func(t *testing.T) {
		o := completed(t, func(o *webhook.Options) {
			o.EnableDeleteOperations, o.EnableConnectOperations = true, true
			o.FailurePolicy, o.TimeoutSeconds = "Fail", 7
			o.URLHost, o.Port, o.ConfigurationName = "127.0.0.1", 9443, "local"
		})
		vwc := o.Configuration([]byte("CA"))
		admit := vwc.Webhooks[0]
		if !slices.Equal(admit.Rules[0].Operations, []admissionregistrationv1.OperationType{"CREATE", "UPDATE", "DELETE", "CONNECT"}) {
			t.Errorf("operations %v", admit.Rules[0].Operations)
		}
		if vwc.Name != "local" || *admit.FailurePolicy != "Fail" || *admit.TimeoutSeconds != 7 {
			t.Errorf("name %s, webhook %+v", vwc.Name, admit)
		}
		for i, path := range []string{"/v1/admit", "/v1/admitlabel", "/v1/admitpolicy"} {
			cc := vwc.Webhooks[i].ClientConfig
			if cc.URL == nil || *cc.URL != "https://127.0.0.1:9443"+path || cc.Service != nil || string(cc.CABundle) != "CA" {
				t.Errorf("clientConfig %d: %+v", i, cc)
			}
		}
		if o.Host != "127.0.0.1" {
			t.Errorf("listens on %q, want the URL's host", o.Host)
		}
	})
}

// TestConfigurationManifest: config/webhook holds what the manager applies
// with its defaults (names and namespace come from kustomize there).
func TestConfigurationManifest(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "webhook", "validating_webhook_configuration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict(data, manifest); err != nil {
		t.Fatal(err)
	}
	want := completed(t, nil).Configuration(nil)
	if len(manifest.Webhooks) != len(want.Webhooks) {
		t.Fatalf("%d webhooks, want %d", len(manifest.Webhooks), len(want.Webhooks))
	}
	for i := range want.Webhooks {
		got := manifest.Webhooks[i].DeepCopy()
		// kustomize sets the prefixed names and the namespace.
		if got.ClientConfig.Service == nil || got.ClientConfig.Service.Name != "webhook-service" || got.ClientConfig.Service.Namespace != "system" {
			t.Errorf("%s: service %+v", got.Name, got.ClientConfig.Service)
			continue
		}
		got.ClientConfig.Service.Name, got.ClientConfig.Service.Namespace = webhook.DefaultServiceName, "portcullis-system"
		if !equality.Semantic.DeepEqual(got, &want.Webhooks[i]) {
			g, _ := yaml.Marshal(got)
			w, _ := yaml.Marshal(want.Webhooks[i])
			t.Errorf("config/webhook differs from Options.Configuration:\n--- manifest\n%s\n--- code\n%s", g, w)
		}
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(o *webhook.Options)
		wantErr string
	}{
		{name: "defaults"},
		{name: "bad failure policy", mod: func(o *webhook.Options) { o.FailurePolicy = "Sometimes" }, wantErr: "--failure-policy"},
		{name: "timeout too long", mod: func(o *webhook.Options) { o.TimeoutSeconds = 31 }, wantErr: "--timeout-seconds"},
		{name: "no port", mod: func(o *webhook.Options) { o.Port = 0 }, wantErr: "--port"},
		{name: "bad TLS version", mod: func(o *webhook.Options) { o.TLSMinVersion = "1.0" }, wantErr: "--tls-min-version"},
		{name: "no namespace", mod: func(o *webhook.Options) { o.Namespace = "" }, wantErr: "namespace"},
		{name: "empty exemption", mod: func(o *webhook.Options) { o.ExemptNamespacePrefixes = []string{""} }, wantErr: "--exempt-namespace-prefix"},
		{name: "bad thread count", mod: func(o *webhook.Options) { o.MaxServingThreads = -2 }, wantErr: "--max-serving-threads"},
		{name: "disabled: nothing checked", mod: func(o *webhook.Options) { o.Enabled, o.Mutation, o.FailurePolicy = false, false, "x" }},
		{name: "mutating only: its options checked", mod: func(o *webhook.Options) { o.Enabled, o.FailurePolicy, o.MutationFailurePolicy = false, "x", "y" }, wantErr: `--mutation-failure-policy "y"`},
		{name: "mutation timeout", mod: func(o *webhook.Options) { o.MutationTimeoutSeconds = 31 }, wantErr: "--mutation-timeout-seconds 31"},
		{name: "mutating configuration name", mod: func(o *webhook.Options) { o.MutatingConfigurationName = " " }, wantErr: "--mutating-webhook-configuration-name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := webhook.NewOptions()
			o.Namespace = "portcullis-system"
			if tc.mod != nil {
				tc.mod(&o)
			}
			err := o.Complete()
			if (err != nil) != (tc.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Complete() = %v, want error with %q", err, tc.wantErr)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	o := webhook.NewOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	err := fs.Parse([]string{
		"--port=9443", "--cert-dir=/tmp/c", "--disable-cert-rotation", "--webhook-url-host=127.0.0.1",
		"--validating-webhook-configuration-name=vwc", "--failure-policy=Fail", "--timeout-seconds=5",
		"--enable-delete-operations", "--enable-connect-operations",
		"--exempt-namespace=a", "--exempt-namespace=b", "--exempt-namespace-prefix=kube-", "--exempt-namespace-suffix=-system",
		"--max-serving-threads=4", "--log-denies", "--manager-service-account=sa",
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Namespace = "ns"
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	if o.Port != 9443 || o.CertDir != "/tmp/c" || !o.DisableCertRotation || o.URLHost != "127.0.0.1" || o.ConfigurationName != "vwc" ||
		o.FailurePolicy != "Fail" || o.TimeoutSeconds != 5 || !o.EnableDeleteOperations || !o.EnableConnectOperations ||
		!slices.Equal(o.ExemptNamespaces, []string{"a", "b"}) || o.ExemptNamespacePrefixes[0] != "kube-" ||
		o.ExemptNamespaceSuffixes[0] != "-system" || o.MaxServingThreads != 4 || !o.LogDenies || o.ServiceAccount != "sa" {
		t.Errorf("options %+v", o)
	}
}

// TestMutatingConfigurationManifest: config/webhook holds the
// MutatingWebhookConfiguration the manager applies with its defaults.
func TestMutatingConfigurationManifest(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "webhook", "mutating_webhook_configuration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict(data, manifest); err != nil {
		t.Fatal(err)
	}
	want := completed(t, nil).MutatingConfiguration(nil)
	if len(manifest.Webhooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(manifest.Webhooks))
	}
	got := manifest.Webhooks[0].DeepCopy()
	if got.ClientConfig.Service == nil || got.ClientConfig.Service.Name != "webhook-service" || got.ClientConfig.Service.Namespace != "system" {
		t.Fatalf("service %+v", got.ClientConfig.Service)
	}
	got.ClientConfig.Service.Name, got.ClientConfig.Service.Namespace = webhook.DefaultServiceName, "portcullis-system"
	if !equality.Semantic.DeepEqual(got, &want.Webhooks[0]) {
		g, _ := yaml.Marshal(got)
		w, _ := yaml.Marshal(want.Webhooks[0])
		t.Errorf("config/webhook differs from Options.MutatingConfiguration:\n--- manifest\n%s\n--- code\n%s", g, w)
	}
	w := want.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Ignore || *w.ReinvocationPolicy != admissionregistrationv1.NeverReinvocationPolicy ||
		*w.TimeoutSeconds != 1 || w.Name != "mutation.gatekeeper.sh" || *w.ClientConfig.Service.Path != "/v1/mutate" {
		t.Errorf("defaults: %+v", w)
	}
}
