package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/mutation"
	"github.com/portcullis-dev/portcullis/webhook"
)

const ownerLabel = `
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: owner
spec:
  match:
    namespaceSelector:
      matchLabels:
        team: a
  location: metadata.labels.owner
  parameters:
    assign:
      fromMetadata:
        field: namespace
`

func mutationSystem(t *testing.T, docs ...string) *mutation.System {
	t.Helper()
	s := mutation.NewSystem(mutation.Options{})
	for _, d := range docs {
		m, err := mutation.New(testenv.Parse(t, d))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Upsert(m); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// applyPatch applies a response's JSON patch to obj, as the API server
// does.
func applyPatch(t *testing.T, obj []byte, resp *admissionv1.AdmissionResponse) map[string]any {
	t.Helper()
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v", resp.PatchType)
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("patch %s: %v", resp.Patch, err)
	}
	out, err := patch.Apply(obj)
	if err != nil {
		t.Fatalf("applying %s: %v", resp.Patch, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestMutationHandler(t *testing.T) {
	s := mutationSystem(t, sidecarAssign, ownerLabel)
	nsA := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"team": "a"}}}
	namespaces := func(_ context.Context, name string) (*corev1.Namespace, error) {
		switch name {
		case nsA.Name:
			return nsA, nil
		case "other", "excluded", "kube-system":
			return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil
		}
		return nil, nil
	}
	metrics, err := webhook.NewMutationMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	sink := &logSink{}
	h := webhook.NewMutationHandler(s, webhook.HandlerOptions{
		Namespaces: namespaces, Namespace: "gk",
		ServiceAccount: "system:serviceaccount:gk:gk", Log: sink.logger(),
		Excluded: func(ns string) bool { return ns == "excluded" },
	}, metrics)

	t.Run("mutated", func(t *testing.T) {
		obj := podJSON("web", "", nil, "nginx")
		req := request(admissionv1.Create, "Pod", "team-a", "web", obj, nil)
		code, resp, body := serve(t, h, reviewBody(t, req))
		if code != http.StatusOK || !resp.Allowed {
			t.Fatalf("HTTP %d: %s", code, body)
		}
		got := applyPatch(t, obj, resp)
		u := &unstructured.Unstructured{Object: got}
		if u.GetLabels()["owner"] != "team-a" {
			t.Errorf("labels %v: fromMetadata must read the request's namespace", u.GetLabels())
		}
		if u.GetNamespace() != "" {
			t.Errorf("the patch set the namespace %q", u.GetNamespace())
		}
		containers, _, _ := unstructured.NestedSlice(got, "spec", "containers")
		if len(containers) != 2 || containers[1].(map[string]any)["name"] != "networking" {
			t.Errorf("containers %v", containers)
		}
	})
	t.Run("not matched", func(t *testing.T) {
		s := mutationSystem(t, ownerLabel)
		h := webhook.NewMutationHandler(s, webhook.HandlerOptions{Namespaces: namespaces, Log: sink.logger()}, nil)
		req := request(admissionv1.Create, "Pod", "other", "web", podJSON("web", "other", nil, "nginx"), nil)
		_, resp, _ := serve(t, h, reviewBody(t, req))
		if !resp.Allowed || resp.Patch != nil || resp.Result.Message != "Resource was not mutated" {
			t.Errorf("response %+v", resp)
		}
	})
	for _, tc := range []struct {
		name, reason string
		mod          func(r *admissionv1.AdmissionRequest)
	}{
		{"own service account", "Gatekeeper does not self-manage", func(r *admissionv1.AdmissionRequest) { r.UserInfo.Username = "system:serviceaccount:gk:gk" }},
		{"DELETE", "Mutating only on create or update", func(r *admissionv1.AdmissionRequest) { r.Operation = admissionv1.Delete }},
		{"gatekeeper resource", "Not mutating gatekeeper resources", func(r *admissionv1.AdmissionRequest) { r.Kind.Group = "mutations.gatekeeper.sh" }},
		{"the manager's namespace", `namespace "gk" is the manager's own`, func(r *admissionv1.AdmissionRequest) { r.Namespace = "gk" }},
		{"excluded by the Config", "Namespace is set to be ignored by Gatekeeper config", func(r *admissionv1.AdmissionRequest) { r.Namespace = "excluded" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request(admissionv1.Create, "Pod", "team-a", "web", podJSON("web", "team-a", nil, "nginx"), nil)
			tc.mod(req)
			_, resp, _ := serve(t, h, reviewBody(t, req))
			if !resp.Allowed || resp.Patch != nil || resp.Result.Message != tc.reason {
				t.Errorf("response %+v, want allowed unpatched: %s", resp, tc.reason)
			}
		})
	}
	t.Run("mutation error refuses the request", func(t *testing.T) {
		// The sidecar Assign finds spec.containers an object.
		obj := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"odd"},"spec":{"containers":{"name":"x"}}}`)
		req := request(admissionv1.Create, "Pod", "other", "odd", obj, nil)
		code, resp, body := serve(t, h, reviewBody(t, req))
		if code != http.StatusOK || resp.Allowed || resp.Result.Code != http.StatusInternalServerError ||
			!strings.Contains(resp.Result.Message, "for mutator Assign.mutations.gatekeeper.sh /sidecar failed for  Pod other odd: spec.containers: the object has an object there, not a list") {
			t.Errorf("HTTP %d, %s", code, body)
		}
	})
	t.Run("bad request", func(t *testing.T) {
		req := request(admissionv1.Create, "Pod", "team-a", "web", []byte(`{"apiVersion":"v1","kind":"Service"}`), nil)
		if code, _, body := serve(t, h, reviewBody(t, req)); code != http.StatusBadRequest {
			t.Errorf("HTTP %d: %s", code, body)
		}
	})
	t.Run("not ready", func(t *testing.T) {
		h := webhook.NewMutationHandler(s, webhook.HandlerOptions{Ready: func() error { return errors.New("mutators not loaded yet") }, Log: sink.logger()}, nil)
		req := request(admissionv1.Create, "Pod", "team-a", "web", podJSON("web", "team-a", nil, "nginx"), nil)
		if code, _, body := serve(t, h, reviewBody(t, req)); code != http.StatusServiceUnavailable {
			t.Errorf("HTTP %d: %s", code, body)
		}
	})
}

// slowMutator waits for its context to end.
type slowMutator struct{}

func (slowMutator) Mutate(ctx context.Context, _ *unstructured.Unstructured, _ *corev1.Namespace, _ string, _ mutation.Operation) (bool, error) {
	<-ctx.Done()
	return false, ctx.Err()
}

// TestMutationTimeout: a mutation that runs out of time is a webhook
// failure (HTTP 504), left to the failurePolicy, not a refusal.
func TestMutationTimeout(t *testing.T) {
	h := webhook.NewMutationHandler(slowMutator{}, webhook.HandlerOptions{Timeout: 50 * time.Millisecond, Log: (&logSink{}).logger()}, nil)
	req := request(admissionv1.Create, "Pod", "", "web", podJSON("web", "", nil, "nginx"), nil)
	if code, _, body := serve(t, h, reviewBody(t, req)); code != http.StatusGatewayTimeout || !strings.Contains(body, "mutation did not finish in time") {
		t.Errorf("HTTP %d: %s", code, body)
	}
}
