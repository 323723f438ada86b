package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// Policies for the handler tests, judged without a cluster.
const (
	// Pods must not use :latest; deny by default.
	tagTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8snolatest
spec:
  crd:
    spec:
      names:
        kind: K8sNoLatest
      validation:
        openAPIV3Schema:
          type: object
          properties:
            tag:
              type: string
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8snolatest
      violation[{"msg": msg}] {
        c := input.review.object.spec.containers[_]
        endswith(c.image, concat(":", ["", input.parameters.tag]))
        msg := sprintf("container %v uses %v", [c.name, input.parameters.tag])
      }
`
	// Pods must carry an owner label.
	ownerTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sowner
spec:
  crd:
    spec:
      names:
        kind: K8sOwner
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sowner
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels.owner
        msg := sprintf("%v %v has no owner", [input.review.kind.kind, input.review.object.metadata.name])
      }
`
	// Refuses exec and attach.
	noExecTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8snoexec
spec:
  crd:
    spec:
      names:
        kind: K8sNoExec
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8snoexec
      violation[{"msg": msg}] {
        input.review.operation == "CONNECT"
        msg := sprintf("%v into %v is not allowed", [input.review.subResource, input.review.name])
      }
`
	// Two complete rules with different values: an evaluation error,
	// which the engine reports as a violation, as frameworks does.
	conflictTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sconflict
spec:
  crd:
    spec:
      names:
        kind: K8sConflict
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sconflict
      x = 1 { input.review.object }
      x = 2 { input.review.object }
      violation[{"msg": "never"}] { x == 3 }
`
	// A msg that is not a string: the engine's Review fails.
	badMsgTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sbadmsg
spec:
  crd:
    spec:
      names:
        kind: K8sBadMsg
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sbadmsg
      violation[{"msg": 42}] { input.review.object }
`
	// Never finishes: 10^12 iterations.
	stuckTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sstuck
spec:
  crd:
    spec:
      names:
        kind: K8sStuck
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sstuck
      violation[{"msg": "stuck"}] {
        n := numbers.range(1, 10000)
        x := n[_]
        y := n[_]
        z := n[_]
        x + y + z < 0
      }
`
)

// constraint builds a constraint document.
func constraint(kind, name, spec string) string {
	return "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: " + kind + "\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

// newEngine loads templates and constraints into an engine.
func newEngine(t testing.TB, docs ...string) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, d := range docs {
		u := testenv.Parse(t, d)
		if u.GetKind() == "ConstraintTemplate" {
			ct, err := engine.ParseTemplate(u)
			if err != nil {
				t.Fatal(err)
			}
			if err := eng.AddTemplate(ctx, ct); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := eng.AddConstraint(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	return eng
}

// podJSON is a Pod with one container per image.
func podJSON(name, ns string, labels map[string]string, images ...string) []byte {
	var containers []map[string]any
	for i, img := range images {
		containers = append(containers, map[string]any{"name": "c" + string(rune('0'+i)), "image": img})
	}
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": labels},
		"spec":     map[string]any{"containers": containers},
	}
	b, _ := json.Marshal(pod)
	return b
}

// request builds an AdmissionRequest for an object of kind (group "").
func request(op admissionv1.Operation, kind, ns, name string, obj, old []byte) *admissionv1.AdmissionRequest {
	return &admissionv1.AdmissionRequest{
		UID:       types.UID("uid-" + name),
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: kind},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: strings.ToLower(kind) + "s"},
		Namespace: ns,
		Name:      name,
		Operation: op,
		UserInfo:  authUser("alice"),
		Object:    runtime.RawExtension{Raw: obj},
		OldObject: runtime.RawExtension{Raw: old},
	}
}

func reviewBody(t testing.TB, req *admissionv1.AdmissionRequest) []byte {
	t.Helper()
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	}
	b, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serve posts body to h and returns the HTTP status, the response (for
// 200) and the raw body.
func serve(t testing.TB, h http.Handler, body []byte) (int, *admissionv1.AdmissionResponse, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/admit?timeout=3s", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		return w.Code, nil, w.Body.String()
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &ar); err != nil || ar.Response == nil {
		t.Fatalf("response %q is not an AdmissionReview: %v", w.Body.String(), err)
	}
	if ar.APIVersion != "admission.k8s.io/v1" || ar.Kind != "AdmissionReview" {
		t.Errorf("response type %s %s", ar.APIVersion, ar.Kind)
	}
	return w.Code, ar.Response, w.Body.String()
}

// logSink collects log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lines = append(s.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 1})
}

func (s *logSink) contains(parts ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		all := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}
