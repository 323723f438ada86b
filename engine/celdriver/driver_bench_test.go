package celdriver_test

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/engine/celdriver"
	"github.com/portcullis-dev/portcullis/internal/gklibrary"
	"github.com/portcullis-dev/portcullis/internal/testenv"
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

// BenchmarkLibraryPod queries the driver once with every gatekeeper-library
// template that has CEL and its first sample constraint, for the Pod
// `make bench-webhook` sends (two containers that fail many of them).
func BenchmarkLibraryPod(b *testing.B) {
	lib, err := gklibrary.ReadTemplates(testenv.LibraryDir(b))
	if err != nil {
		b.Fatal(err)
	}
	d := celdriver.New()
	ctx := context.Background()
	var constraints []*unstructured.Unstructured
	for _, p := range lib {
		ct, err := engine.ParseTemplate(p.Template)
		if err != nil {
			b.Fatal(err)
		}
		if !engine.HasCode(ct, engine.EngineCEL) || p.Constraint == nil {
			continue
		}
		if err := d.AddTemplate(ctx, ct); err != nil {
			b.Fatal(err)
		}
		constraints = append(constraints, p.Constraint)
	}
	podJSON := strings.NewReplacer("@@SUFFIX@@", "x8k2q", "@@OBJUID@@", "uid", "@@TAG@@", "1.1", "@@SLEEP@@", "3600").Replace(testenv.BenchPod(b))
	r := &request{req: &admissionv1.AdmissionRequest{
		UID:       "1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Name:      "web-7c9d-x8k2q",
		Namespace: "default",
		Operation: admissionv1.Create,
		UserInfo:  authUser("alice"),
		Object:    runtime.RawExtension{Raw: []byte(podJSON)},
	}, ns: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}}
	resp, err := d.Query(ctx, testTarget, constraints, r)
	if err != nil {
		b.Fatal(err)
	}
	want := len(resp.Results)
	b.Logf("%d constraints, %d results", len(constraints), want)
	b.ReportAllocs()
	defer reportCPU(b, cpuTime(b))
	for b.Loop() {
		resp, err := d.Query(ctx, testTarget, constraints, r)
		if err != nil || len(resp.Results) != want {
			b.Fatalf("%v, %d results", err, len(resp.Results))
		}
	}
}

// cpuTime is this process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time per op (GC included) since
// start: less sensitive than ns/op to what else the machine runs.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N)/1e3, "cpu-µs/op")
}
