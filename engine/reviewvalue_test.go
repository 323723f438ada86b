package engine

import (
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/portcullis-dev/portcullis/engine/regodriver"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestDecodedReviewValue: input.review made from the review's decoded
// objects (regodriver.DecodedReview) is what decoding its JSON gives,
// numbers printed alike, for every gatekeeper-library sample object and
// AdmissionReview, with and without a namespace, for CREATE, UPDATE and
// DELETE.
func TestDecodedReviewValue(t *testing.T) {
	lib := testenv.Library(t)
	ns := map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": "ns", "labels": map[string]any{"n": "1"}}}
	checked := 0
	check := func(name string, r *review) {
		t.Helper()
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, namespace := range []map[string]any{nil, ns} {
			got, gotErr := regodriver.ReviewValue(r, namespace)
			want, wantErr := regodriver.ReviewValue(json.RawMessage(raw), namespace)
			if gotErr != nil || wantErr != nil {
				t.Errorf("%s: error %v, from JSON %v", name, gotErr, wantErr)
				continue
			}
			if got.Compare(want) != 0 || got.String() != want.String() {
				t.Errorf("%s: from the decoded objects\n%s\nfrom JSON\n%s", name, got, want)
			}
			checked++
		}
	}
	for _, p := range lib {
		for _, o := range p.Objects {
			f, u := o.File, o.Object
			if u.GetKind() == "AdmissionReview" {
				var ar admissionv1.AdmissionReview
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ar); err != nil || ar.Request == nil {
					continue
				}
				r, err := newAdmissionReview(ar.Request, nil, SourceOriginal)
				if err != nil {
					continue
				}
				check(f+" (AdmissionReview)", r)
				continue
			}
			r, err := newObjectReview(u, nil, SourceOriginal)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			check(f, r)
			raw, _ := u.MarshalJSON()
			for _, op := range []admissionv1.Operation{admissionv1.Update, admissionv1.Delete} {
				req := &admissionv1.AdmissionRequest{UID: "u", Operation: op,
					Object: runtime.RawExtension{Raw: raw}, OldObject: runtime.RawExtension{Raw: raw}}
				if op == admissionv1.Delete {
					req.Object = runtime.RawExtension{}
				}
				r, err := newAdmissionReview(req, nil, SourceOriginal)
				if err != nil {
					t.Fatalf("%s %s: %v", f, op, err)
				}
				check(f+" "+string(op), r)
			}
		}
	}
	// Numbers: integers print as float64s do, as the frameworks driver
	// prints them.
	u := newObj("v1", "ConfigMap", "ns", "n", nil)
	u.Object["data"] = map[string]any{"big": int64(1000000), "f": 0.5, "neg": int64(-3), "huge": int64(1 << 62)}
	r, err := newObjectReview(u, nil, SourceOriginal)
	if err != nil {
		t.Fatal(err)
	}
	check("numbers", r)
	if v, _ := regodriver.ReviewValue(r, nil); !strings.Contains(v.String(), `"big": 1e+06`) {
		t.Errorf("1000000 does not print as 1e+06: %s", v)
	}
	t.Logf("%d reviews compared", checked)
	if checked < 500 {
		t.Errorf("only %d reviews compared", checked)
	}
}
