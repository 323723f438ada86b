package webhook_test

import (
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/webhook"
)

// TestAdmitTraces: a request matching Config spec.validation.traces is
// reviewed with a trace, which is logged with the object when dump is set;
// other requests are not traced.
func TestAdmitTraces(t *testing.T) {
	eng := newEngine(t, tagTemplate, constraint("K8sNoLatest", "no-latest", "  parameters:\n    tag: latest\n"))
	var sink logSink
	h := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{
		Log: sink.logger(),
		Trace: func(user string, gvk schema.GroupVersionKind) (bool, bool) {
			return user == "alice" && gvk.Kind == "Pod", true
		},
	})
	req := request(admissionv1.Create, "Pod", "default", "traced", podJSON("traced", "default", nil, "nginx:latest"), nil)
	req.UserInfo.Username = "alice"
	if code, resp, body := serve(t, h, reviewBody(t, req)); code != http.StatusOK || resp.Allowed {
		t.Fatalf("HTTP %d %s, want the refusal", code, body)
	}
	if !sink.contains("Evaluation trace", `"user"="alice"`, "Enter", `"object"=`) {
		t.Fatalf("no trace with the object logged for alice; lines: %v", sink.lines)
	}
	other := request(admissionv1.Create, "Pod", "default", "untraced", podJSON("untraced", "default", nil, "nginx:latest"), nil)
	other.UserInfo.Username = "bob"
	serve(t, h, reviewBody(t, other))
	if sink.contains("Evaluation trace", `"user"="bob"`) {
		t.Fatal("bob's request was traced")
	}
}
