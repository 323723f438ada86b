package celdriver_test

import (
	"context"
	"os"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
)

// BenchmarkCapabilities evaluates the gatekeeper-library's
// K8sPSPCapabilities CEL (11 variables, 2 validations) for one Pod that
// passes and one that fails.
func BenchmarkCapabilities(b *testing.B) {
	path := libraryDir + "/pod-security-policy/capabilities/template.yaml"
	if _, err := os.Stat(path); err != nil {
		b.Skipf("gatekeeper-library not found: %v", err)
	}
	t := &testing.T{}
	ct := readTemplate(t, path)
	d := celdriver.New()
	if err := d.AddTemplate(context.Background(), ct); err != nil {
		b.Fatal(err)
	}
	c := &unstructured.Unstructured{Object: obj{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": ct.Spec.CRD.Spec.Names.Kind, "metadata": obj{"name": "c"},
		"spec": obj{"parameters": obj{"allowedCapabilities": []any{"CHOWN"}, "requiredDropCapabilities": []any{"ALL"}}},
	}}
	passing := pod("p", nil)
	passing["spec"].(obj)["containers"].([]any)[0].(obj)["securityContext"] = obj{"capabilities": obj{"drop": []any{"ALL"}}}
	for _, bc := range []struct {
		name   string
		object obj
		want   int
	}{{"passes", passing, 0}, {"fails", pod("p", nil), 1}} {
		b.Run(bc.name, func(b *testing.B) {
			r := admissionFor(t, admissionv1.Create, bc.object, nil)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := d.Query(context.Background(), testTarget, []*unstructured.Unstructured{c}, r)
				if err != nil || len(resp.Results) != bc.want {
					b.Fatalf("%v, %d results", err, len(resp.Results))
				}
			}
		})
	}
}
