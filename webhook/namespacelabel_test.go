package webhook_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis-dev/portcullis/webhook"
)

func TestNamespaceLabel(t *testing.T) {
	h := webhook.NewNamespaceLabelHandler(webhook.NewExemptions([]string{"kube-system"}, []string{"team-"}, []string{"-sandbox"}), (&logSink{}).logger())
	ns := func(name string, labels map[string]string) []byte {
		b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name, "labels": labels}})
		return b
	}
	ignore := map[string]string{webhook.IgnoreLabel: "true"}
	tests := []struct {
		name   string
		req    *admissionv1.AdmissionRequest
		wantOK bool
	}{
		{"no label", request(admissionv1.Create, "Namespace", "", "prod", ns("prod", map[string]string{"a": "b"}), nil), true},
		{"label on a namespace that is not exempt", request(admissionv1.Create, "Namespace", "", "prod", ns("prod", ignore), nil), false},
		{"label added by an update", request(admissionv1.Update, "Namespace", "", "prod", ns("prod", ignore), ns("prod", nil)), false},
		{"exempt by name", request(admissionv1.Create, "Namespace", "", "kube-system", ns("kube-system", ignore), nil), true},
		{"exempt by prefix", request(admissionv1.Update, "Namespace", "", "team-a", ns("team-a", ignore), nil), true},
		{"exempt by suffix", request(admissionv1.Create, "Namespace", "", "x-sandbox", ns("x-sandbox", ignore), nil), true},
		{"a prefix is not a suffix", request(admissionv1.Create, "Namespace", "", "a-team-", ns("a-team-", ignore), nil), false},
		{"DELETE", request(admissionv1.Delete, "Namespace", "", "prod", nil, ns("prod", ignore)), true},
		{"not a Namespace", request(admissionv1.Create, "ConfigMap", "prod", "cm", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"labels":{"admission.gatekeeper.sh/ignore":"x"}}}`), nil), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, resp, body := serve(t, h, reviewBody(t, tc.req))
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, body)
			}
			if resp.Allowed != tc.wantOK {
				t.Fatalf("allowed %v, want %v: %+v", resp.Allowed, tc.wantOK, resp.Result)
			}
			if !tc.wantOK && (resp.Result.Code != http.StatusForbidden || !strings.Contains(resp.Result.Message, "Only exempt namespace can have the admission.gatekeeper.sh/ignore label")) {
				t.Errorf("result %+v", resp.Result)
			}
		})
	}
}

func TestExemptions(t *testing.T) {
	e := webhook.NewExemptions([]string{"kube-system", ""}, []string{"team-", ""}, []string{"-dev"})
	for ns, want := range map[string]bool{
		"kube-system": true, "kube-public": false, "team-a": true, "team-": true, "a-team": false,
		"x-dev": true, "dev": false, "": false,
	} {
		if got := e.Exempt(ns); got != want {
			t.Errorf("Exempt(%q) = %v, want %v", ns, got, want)
		}
	}
	var none *webhook.Exemptions
	if none.Exempt("kube-system") {
		t.Error("nil Exemptions exempt a namespace")
	}
}
