package webhook_test

import (
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/webhook"
)

// TestAdmitExpansionFails: a Deployment that cannot be expanded (it has
// no spec.template) is still judged by its own violations (review finding
// 7): they deny it, with the failure as a warning; when they do not, the
// request fails (500), as Gatekeeper fails a request it cannot expand.
func TestAdmitExpansionFails(t *testing.T) {
	eng := newEngine(t, ownerTemplate,
		constraint("K8sOwner", "all-need-owner", "  match:\n    kinds: [{apiGroups: [\"\", apps], kinds: [Pod, Deployment]}]\n"))
	sys := expansion.NewSystem(nil)
	tm, err := expansion.FromUnstructured(testenv.Parse(t, expandDeployments))
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Upsert(tm); err != nil {
		t.Fatal(err)
	}
	h := webhook.NewAdmissionHandler(&expansion.Reviewer{Engine: eng, System: sys}, webhook.HandlerOptions{})
	deployment := func(labels string) *admissionv1.AdmissionRequest {
		obj := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"` + labels + `},"spec":{"replicas":1}}`
		r := request(admissionv1.Create, "Deployment", "default", "web", []byte(obj), nil)
		r.Kind.Group = "apps"
		r.Resource.Group = "apps"
		return r
	}
	const expErr = `expanding Deployment "default/web": ExpansionTemplate "expand-deployments": templateSource not found`

	code, resp, body := serve(t, h, reviewBody(t, deployment("")))
	if code != http.StatusOK || resp.Allowed || resp.Result.Message != "[all-need-owner] Deployment web has no owner" {
		t.Errorf("without an owner: HTTP %d %s, want its own refusal", code, body)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], expErr) {
		t.Errorf("without an owner: warnings %q, want one saying %q", resp.Warnings, expErr)
	}

	code, _, body = serve(t, h, reviewBody(t, deployment(`,"labels":{"owner":"me"}`)))
	if code != http.StatusInternalServerError || !strings.Contains(body, strings.ReplaceAll(expErr, `"`, `\"`)) {
		t.Errorf("with an owner: HTTP %d %s, want 500 with %q", code, body, expErr)
	}
}
