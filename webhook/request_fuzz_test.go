package webhook

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/engine"
)

var fuzzSeeds = []string{
	`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"default","name":"p","operation":"CREATE","userInfo":{"username":"u"},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"nginx:latest"}]}}}}`,
	`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"2","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"default","name":"p","operation":"DELETE","oldObject":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}}}`,
	`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"3","kind":{"group":"","version":"v1","kind":"PodExecOptions"},"namespace":"default","name":"p","subResource":"exec","operation":"CONNECT","object":{"apiVersion":"v1","kind":"PodExecOptions","command":["ls"]}}}`,
	`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"4","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"UPDATE","object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"}},"oldObject":null}}`,
	`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"5","kind":{"version":"v1","kind":"Namespace"},"name":"ns","operation":"CREATE","object":{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns","labels":{"admission.gatekeeper.sh/ignore":"1"}}}}}`,
	`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"6","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":1e400}}}}`,
	`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`,
	`{"kind":"AdmissionReview"}`,
	`[]`, `null`, ``, `{`, `"\u0000"`,
}

// FuzzDecodeReview: decoding never panics, and what it accepts is a
// request every endpoint can rely on.
func FuzzDecodeReview(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ar, herr := decodeReview(data)
		if herr != nil {
			if herr.code != http.StatusBadRequest || herr.Error() == "" {
				t.Fatalf("error %d %q", herr.code, herr.Error())
			}
			return
		}
		if ar.Request == nil || ar.Request.UID == "" || ar.Request.Kind.Kind == "" {
			t.Fatalf("accepted an incomplete request: %+v", ar.Request)
		}
		if herr := checkObjects(ar.Request); herr != nil && herr.code != http.StatusBadRequest {
			t.Fatalf("checkObjects error %d %q", herr.code, herr.Error())
		}
	})
}

const fuzzTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sfuzz
spec:
  crd:
    spec:
      names:
        kind: K8sFuzz
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sfuzz
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels.owner
        msg := sprintf("%v has no owner", [input.review.name])
      }
`

// FuzzAdmit sends any body through the /v1/admit handler and a real
// engine: the answer is an AdmissionReview, a 400 or a 500, never a panic.
func FuzzAdmit(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	eng, err := engine.New(engine.Options{})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	for _, doc := range []string{fuzzTemplate, "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sFuzz\nmetadata:\n  name: owner\n"} {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			f.Fatal(err)
		}
		if u.GetKind() == "ConstraintTemplate" {
			ct, err := engine.ParseTemplate(u)
			if err != nil {
				f.Fatal(err)
			}
			if err := eng.AddTemplate(ctx, ct); err != nil {
				f.Fatal(err)
			}
		} else if err := eng.AddConstraint(ctx, u); err != nil {
			f.Fatal(err)
		}
	}
	h := NewAdmissionHandler(eng, HandlerOptions{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := httptest.NewRequest(http.MethodPost, AdmitPath, bytes.NewReader(data))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusInternalServerError:
		default:
			t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
		}
		if w.Body.Len() == 0 {
			t.Fatal("empty answer")
		}
	})
}
