package webhook_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/webhook"
)

// requestNamespaceTemplates report the request's namespace, in CEL and
// in Rego, for every Namespace.
const requestNamespaceTemplates = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8scelrequestnamespace
spec:
  crd:
    spec:
      names:
        kind: K8sCELRequestNamespace
  targets:
  - target: admission.k8s.gatekeeper.sh
    code:
    - engine: K8sNativeValidation
      source:
        validations:
        - expression: 'false'
          messageExpression: '"cel request.namespace=[" + (has(request.namespace) ? request.namespace : "<none>") + "]"'
---
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sregorequestnamespace
spec:
  crd:
    spec:
      names:
        kind: K8sRegoRequestNamespace
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sregorequestnamespace
      violation[{"msg": msg}] {
        msg := sprintf("rego input.review.namespace=[%v]", [object.get(input.review, "namespace", "<none>")])
      }
`

// TestAdmitNamespaceRequestHasNoNamespace: the API server may name a
// Namespace itself as the namespace of its request (server-side apply
// does); Gatekeeper judges, logs and reports it with none
// (pkg/webhook/policy.go, createReviewForRequest), and so do we.
func TestAdmitNamespaceRequestHasNoNamespace(t *testing.T) {
	docs := strings.Split(requestNamespaceTemplates, "\n---\n")
	match := "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Namespace]}]\n"
	docs = append(docs, constraint("K8sCELRequestNamespace", "cel", match), constraint("K8sRegoRequestNamespace", "rego", match))
	eng := newEngine(t, docs...)
	logs := &logSink{}
	h := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{LogDenies: true, Log: logs.logger()})
	ns := []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a","labels":{"a":"b"}}}`)
	for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
		req := request(op, "Namespace", "team-a", "team-a", ns, nil)
		if op == admissionv1.Update {
			req.OldObject = req.Object
		}
		code, resp, body := serve(t, h, reviewBody(t, req))
		if code != http.StatusOK || resp.Allowed {
			t.Fatalf("%s: HTTP %d, allowed %v: %s", op, code, resp.Allowed, body)
		}
		for _, want := range []string{"[cel] cel request.namespace=[<none>]", "[rego] rego input.review.namespace=[<none>]"} {
			if !slices.ContainsFunc(strings.Split(resp.Result.Message, "\n"), func(l string) bool { return l == want }) {
				t.Errorf("%s: denial %q lacks %q", op, resp.Result.Message, want)
			}
		}
	}
	if !logs.contains(`"resource_kind"="Namespace"`, `"resource_namespace"=""`, `"resource_name"="team-a"`) {
		t.Errorf("no violation logged with an empty resource_namespace: %q", logs.lines)
	}
}

// TestNamespaceRequestThroughAPIServer: a Namespace created, and applied
// server-side, through kube-apiserver is judged with no request
// namespace by both engines.
func TestNamespaceRequestThroughAPIServer(t *testing.T) {
	needEnv(t)
	match := "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Namespace]}]\n    labelSelector: {matchLabels: {request-namespace-test: \"yes\"}}\n"
	for doc := range strings.SplitSeq(requestNamespaceTemplates, "\n---\n") {
		createPolicy(t, doc)
	}
	createPolicy(t, constraint("K8sCELRequestNamespace", "cel", match))
	createPolicy(t, constraint("K8sRegoRequestNamespace", "rego", match))
	ns := func() *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("Namespace")
		u.SetName("request-namespace-test")
		u.SetLabels(map[string]string{"request-namespace-test": "yes"})
		return u
	}
	want := []string{"[cel] cel request.namespace=[<none>]", "[rego] rego input.review.namespace=[<none>]"}
	for _, tc := range []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"create", func(ctx context.Context) error { return env.Client.Create(ctx, ns(), client.DryRunAll) }},
		{"server-side apply", func(ctx context.Context) error {
			return env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(ns()), client.FieldOwner("test"), client.DryRunAll)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eventually(t, "both constraints to refuse the Namespace", func(ctx context.Context) error {
				err := tc.do(ctx)
				for _, w := range want {
					if err := wantDenied(err, w); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}
