package webhook_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portcullis-dev/portcullis/webhook"
)

// TestBadInput: every endpoint answers what it cannot judge with a clear
// 4xx and a Status body saying why, never with a panic. The API server
// counts such answers as webhook failures, so failurePolicy decides.
func TestBadInput(t *testing.T) {
	eng := newEngine(t, tagTemplate, constraint("K8sNoLatest", "no-latest", "  parameters:\n    tag: latest\n"))
	handlers := map[string]http.Handler{
		webhook.AdmitPath:       webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{}),
		webhook.AdmitLabelPath:  webhook.NewNamespaceLabelHandler(webhook.NewExemptions(nil, nil, nil), (&logSink{}).logger()),
		webhook.AdmitPolicyPath: webhook.NewPolicyHandler(eng, engineOptions(), 0, (&logSink{}).logger()),
	}
	pod := podJSON("p", "default", nil, "nginx:1")
	huge := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"x":"` + strings.Repeat("a", 3<<20) + `"}}`
	withReq := func(mod func(r *admissionv1.AdmissionRequest)) []byte {
		r := request(admissionv1.Create, "Pod", "default", "p", pod, nil)
		mod(r)
		return reviewBody(t, r)
	}
	tests := []struct {
		name   string
		method string
		ctype  string
		body   []byte
		want   string
		code   int
		all    bool // every endpoint refuses it, not only /v1/admit
	}{
		{all: true, name: "empty body", body: nil, want: "empty body"},
		{all: true, name: "not JSON", body: []byte("hello"), want: "not an AdmissionReview"},
		{all: true, name: "JSON, not an AdmissionReview", body: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`), want: "not an AdmissionReview"},
		{all: true, name: "an AdmissionReview of another version", body: []byte(`{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"1"}}`), want: "not an AdmissionReview"},
		{all: true, name: "wrong types", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":["1"]}}`), want: "not an AdmissionReview"},
		{all: true, name: "no request", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), want: "has no request"},
		{all: true, name: "no uid", body: withReq(func(r *admissionv1.AdmissionRequest) { r.UID = "" }), want: "has no uid"},
		{name: "no object", body: withReq(func(r *admissionv1.AdmissionRequest) { r.Object.Raw = nil }), want: "CREATE request has no object"},
		{name: "null object", body: withReq(func(r *admissionv1.AdmissionRequest) { r.Object.Raw = []byte("null") }), want: "CREATE request has no object"},
		{name: "DELETE without oldObject", body: withReq(func(r *admissionv1.AdmissionRequest) { r.Operation = admissionv1.Delete }), want: "DELETE request has no oldObject"},
		{name: "object is not an object", body: withReq(func(r *admissionv1.AdmissionRequest) { r.Object.Raw = []byte(`[1,2]`) }), want: "object is not a Kubernetes object"},
		{all: true, name: "unknown kind: none in the request", body: withReq(func(r *admissionv1.AdmissionRequest) { r.Kind = metav1.GroupVersionKind{} }), want: "unknown kind"},
		{name: "unknown kind: none in the object", body: withReq(func(r *admissionv1.AdmissionRequest) { r.Object.Raw = []byte(`{"metadata":{"name":"p"}}`) }), want: "unknown kind"},
		{name: "unknown kind: object and request disagree", body: withReq(func(r *admissionv1.AdmissionRequest) { r.Kind.Kind = "Widget" }), want: "unknown kind: object is a /v1, Kind=Pod, the request is for a /v1, Kind=Widget"},
		{name: "3 MiB object", body: withReq(func(r *admissionv1.AdmissionRequest) {
			r.Kind.Kind = "ConfigMap"
			r.Object.Raw = []byte(huge)
		}), want: "more than the 3145728 the API server accepts"},
		{all: true, name: "4 MiB body", body: append([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","x":"`), bytes.Repeat([]byte("a"), 4<<20)...), want: "body larger than"},
		{all: true, name: "GET", method: http.MethodGet, body: withReq(func(*admissionv1.AdmissionRequest) {}), want: "method GET not allowed", code: http.StatusMethodNotAllowed},
		{all: true, name: "not JSON content", ctype: "application/yaml", body: withReq(func(*admissionv1.AdmissionRequest) {}), want: "is not application/json"},
	}
	for path, h := range handlers {
		for _, tc := range tests {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				if path != webhook.AdmitPath && !tc.all {
					t.Skip("a Pod request: only Namespaces, templates and constraints are checked there")
				}
				method := tc.method
				if method == "" {
					method = http.MethodPost
				}
				r := httptest.NewRequest(method, path, bytes.NewReader(tc.body))
				ctype := tc.ctype
				if ctype == "" {
					ctype = "application/json"
				}
				r.Header.Set("Content-Type", ctype)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				want := tc.code
				if want == 0 {
					want = http.StatusBadRequest
				}
				if w.Code != want {
					t.Fatalf("HTTP %d %s, want %d", w.Code, w.Body.String(), want)
				}
				var st metav1.Status
				if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Kind != "Status" || st.Code != int32(want) {
					t.Fatalf("body %q is not a Status with code %d: %v", w.Body.String(), want, err)
				}
				if !strings.Contains(st.Message, tc.want) {
					t.Errorf("message %q does not say %q", st.Message, tc.want)
				}
			})
		}
	}
}
