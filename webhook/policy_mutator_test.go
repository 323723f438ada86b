package webhook_test

import (
	"net/http"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/webhook"
)

const sidecarAssign = `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: sidecar
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: "spec.containers[name: networking]"
  parameters:
    assign:
      value:
        name: networking
        image: quay.io/foo/bar:latest
`

// TestPolicyMutators: /v1/admitpolicy refuses a mutator that does not
// compile with 422 Invalid and a cause naming the field.
func TestPolicyMutators(t *testing.T) {
	h := webhook.NewPolicyHandler(newEngine(t), engine.Options{}, 0, (&logSink{}).logger())
	image := `
apiVersion: mutations.gatekeeper.sh/v1alpha1
kind: AssignImage
metadata:
  name: image
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: "spec.containers[name: *].image"
  parameters:
    assignTag: ":v1"
`
	for _, tc := range []struct {
		name, doc   string
		field, text string // "" field: allowed
	}{
		{name: "sidecar", doc: sidecarAssign},
		{name: "v1beta1", doc: strings.Replace(sidecarAssign, "mutations.gatekeeper.sh/v1", "mutations.gatekeeper.sh/v1beta1", 1)},
		{name: "AssignImage", doc: image},
		{name: "bad location", doc: strings.Replace(sidecarAssign, `"spec.containers[name: networking]"`, `"spec.containers[name: networking"`, 1),
			field: "spec.location", text: "invalid location: at position 32: expected ']' to close the list selector"},
		{name: "other key", doc: strings.Replace(sidecarAssign, "name: networking\n        image", "name: web\n        image", 1),
			field: "spec.parameters.assign.value.name", text: "must be networking"},
		{name: "bad tag", doc: strings.Replace(image, `":v1"`, `"v1"`, 1),
			field: "spec.parameters.assignTag", text: `"v1" must be a tag starting with ':'`},
		{name: "DELETE operation", doc: strings.Replace(sidecarAssign, `versions: ["v1"]`, "versions: [\"v1\"]\n    operations: [DELETE]", 1),
			field: "spec.applyTo[0].operations[0]", text: `"DELETE" is not one of CREATE, UPDATE, *`},
		{name: "externalData", doc: strings.Replace(sidecarAssign, "      value:\n        name: networking\n        image: quay.io/foo/bar:latest\n", "      externalData:\n        provider: p\n", 1),
			field: "spec.location", text: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc
			if tc.name == "externalData" {
				doc = strings.Replace(doc, `"spec.containers[name: networking]"`, `"spec.containers[name: networking].image"`, 1)
				tc.field, tc.text = "spec.parameters.assign.externalData", "externalData is not supported yet"
			}
			code, resp, body := serve(t, h, reviewBody(t, policyRequest(t, admissionv1.Create, doc)))
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, body)
			}
			if tc.field == "" {
				if !resp.Allowed {
					t.Fatalf("refused: %+v", resp.Result)
				}
				return
			}
			if resp.Allowed || resp.Result.Code != http.StatusUnprocessableEntity || resp.Result.Reason != metav1.StatusReasonInvalid {
				t.Fatalf("result %+v, want 422 Invalid", resp.Result)
			}
			d := resp.Result.Details
			if d == nil || len(d.Causes) != 1 || d.Causes[0].Field != tc.field || !strings.Contains(d.Causes[0].Message, tc.text) {
				t.Errorf("details %+v, want a cause at %s containing %q", d, tc.field, tc.text)
			}
		})
	}
}
