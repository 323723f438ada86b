package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/gklibrary"
	"github.com/portcullis-dev/portcullis/internal/gklibrary/libengine"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/webhook"
)

// libraryEngine loads every gatekeeper-library template with its first
// sample constraint, or skips without the library.
func libraryEngine(b *testing.B, opts engine.Options) *engine.Engine {
	b.Helper()
	return libraryEngineOf(b, opts, nil)
}

// libraryEngineOf is libraryEngine with only the templates keep accepts
// (all when keep is nil).
func libraryEngineOf(b *testing.B, opts engine.Options, keep func(gklibrary.Policy) bool) *engine.Engine {
	b.Helper()
	lib, err := gklibrary.ReadTemplates(testenv.LibraryDir(b))
	if err != nil {
		b.Fatal(err)
	}
	if keep != nil {
		lib = slices.DeleteFunc(lib, func(p gklibrary.Policy) bool { return !keep(p) })
	}
	eng, _, err := libengine.New(context.Background(), opts, lib)
	if err != nil {
		b.Fatal(err)
	}
	return eng
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
// start, which is what capacity depends on, whatever else the machine runs.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// BenchmarkAdmitLibrary: one /v1/admit request (HTTP without TLS) for a
// two-container Pod against the whole library.
func BenchmarkAdmitLibrary(b *testing.B) {
	eng := libraryEngine(b, engine.Options{})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	h := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{
		Namespaces: func(context.Context, string) (*corev1.Namespace, error) { return ns.DeepCopy(), nil },
	})
	pod := podJSON("web", "default", nil, "nginx:latest", "k8s.gcr.io/busybox:latest")
	body := reviewBody(b, request("CREATE", "Pod", "default", "web", pod, nil))
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime(b))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest(http.MethodPost, "/v1/admit", bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("HTTP %d", w.Code)
			}
		}
	})
}

// BenchmarkReviewLibrary: the engine's part of BenchmarkAdmitLibrary,
// one review at a time, with the result cache off, and on with the same
// Pod every time, with a ReplicaSet's pods (the name varies) and with
// Pods that all differ (so do the images). hit% is the share of cacheable
// constraint results the cache held.
func BenchmarkReviewLibrary(b *testing.B) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	const pods = 1000
	for _, bc := range []struct {
		name     string
		cache    int
		vary     bool
		distinct bool
	}{
		{"cache=off", -1, true, true},
		{"same", 0, false, false},
		{"replicas", 0, true, false},
		{"distinct", 0, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			eng := libraryEngine(b, engine.Options{ResultCacheSize: bc.cache})
			reqs := make([]*admissionv1.AdmissionRequest, pods)
			for i := range reqs {
				name, tag := "web", "latest"
				if bc.vary {
					name = fmt.Sprintf("web-7c9d-%05d", i)
				}
				if bc.distinct {
					tag = fmt.Sprintf("1.%d", i)
				}
				pod := podJSON(name, "default", map[string]string{"app": "web"}, "nginx:"+tag, "k8s.gcr.io/busybox:latest")
				reqs[i] = request("CREATE", "Pod", "default", name, pod, nil)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			defer reportCPU(b, cpuTime(b))
			for i := 0; i < b.N; i++ {
				in := &engine.Admission{Request: reqs[i%pods], Namespace: ns, Source: engine.SourceOriginal}
				if _, err := eng.Review(ctx, in, engine.EnforcementPointWebhook); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if st := eng.CacheStats(); st.Hits+st.Misses > 0 {
				b.ReportMetric(100*float64(st.Hits)/float64(st.Hits+st.Misses), "hit%")
			}
		})
	}
}

// BenchmarkAdmitBenchPod: one /v1/admit request at a time (HTTP without
// TLS) for the Pod `make bench-webhook` sends: as a ReplicaSet's pods
// (its name and uid vary, its spec does not), and as distinct Pods (its
// image tag and a command vary too, so few results are cached; with the
// result cache off, none is), with CEL
// first and with Rego only; and, to tell the engines apart, with only the
// templates that have CEL, which run either their CEL or their Rego, with
// only those that have Rego alone, and with none.
func BenchmarkAdmitBenchPod(b *testing.B) {
	sets := map[bool][][]byte{}
	bodies := func(distinct bool) [][]byte {
		if sets[distinct] == nil {
			sets[distinct] = benchPodBodies(b, distinct)
		}
		return sets[distinct]
	}
	for _, bc := range []struct {
		name     string
		distinct bool
		opts     engine.Options
		keep     func(gklibrary.Policy) bool
	}{
		{"replicas", false, engine.Options{}, nil},
		{"replicas-rego", false, engine.Options{DisableK8sNativeValidation: true}, nil},
		{"distinct", true, engine.Options{}, nil},
		{"distinct-nocache", true, engine.Options{ResultCacheSize: -1}, nil},
		{"distinct-rego", true, engine.Options{DisableK8sNativeValidation: true}, nil},
		{"cel-templates", true, engine.Options{}, hasCEL},
		{"cel-templates-rego", true, engine.Options{DisableK8sNativeValidation: true}, hasCEL},
		// The templates with Rego only, which run Rego whatever the flag:
		// what remains when the CEL templates cost nothing.
		{"rego-only-templates-nocache", true, engine.Options{ResultCacheSize: -1}, regoOnly},
		// No template: decoding, matching and answering.
		{"no-templates", true, engine.Options{}, func(gklibrary.Policy) bool { return false }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			admitBenchPods(b, libraryEngineOf(b, bc.opts, bc.keep), bodies(bc.distinct), strconv.FormatBool(bc.name == "no-templates"))
		})
	}
}

// BenchmarkAdmitBenchPodPerTemplate: the distinct Pods of
// BenchmarkAdmitBenchPod, result cache off, against one library template
// and its constraint at a time, CEL first: what each template adds to a
// review (compare with no-templates there). Templates whose constraint
// does not match a Pod cost only their matching.
func BenchmarkAdmitBenchPodPerTemplate(b *testing.B) {
	lib, err := gklibrary.ReadTemplates(testenv.LibraryDir(b))
	if err != nil {
		b.Fatal(err)
	}
	pods := benchPodBodies(b, true)
	for _, p := range lib {
		name := p.Template.GetName()
		engineName := "rego"
		if hasCEL(p) {
			engineName = "cel"
		}
		b.Run(engineName+"/"+name, func(b *testing.B) {
			eng := libraryEngineOf(b, engine.Options{ResultCacheSize: -1}, func(q gklibrary.Policy) bool { return q.Template.GetName() == name })
			admitBenchPods(b, eng, pods, "")
		})
	}
}

// benchPodBodies are 1,000 AdmissionReview bodies for the Pod `make
// bench-webhook` sends: a ReplicaSet's pods (name and uid vary), or
// distinct Pods (image tag and a command vary too).
func benchPodBodies(b *testing.B, distinct bool) [][]byte {
	b.Helper()
	tmpl := testenv.BenchPod(b)
	const pods = 1000
	out := make([][]byte, pods)
	for i := range out {
		name := fmt.Sprintf("web-7c9d-%05d", i)
		tag, sleep := "latest", "3600"
		if distinct {
			tag, sleep = fmt.Sprintf("1.%d", i), fmt.Sprint(3600+i)
		}
		pod := strings.NewReplacer("web-7c9d-@@SUFFIX@@", name, "@@OBJUID@@", fmt.Sprintf("uid-%d", i),
			"@@TAG@@", tag, "@@SLEEP@@", sleep).Replace(tmpl)
		out[i] = reviewBody(b, request("CREATE", "Pod", "default", name, []byte(pod), nil))
	}
	return out
}

// admitBenchPods sends the bodies to /v1/admit in turn, one at a time,
// and reports CPU per review. Every answer must say whether it allows, and
// say allowed (unless it is "").
func admitBenchPods(b *testing.B, eng *engine.Engine, bodies [][]byte, allowed string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	h := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{
		Namespaces: func(context.Context, string) (*corev1.Namespace, error) { return ns.DeepCopy(), nil },
	})
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime(b))
	for i := 0; i < b.N; i++ {
		r := httptest.NewRequest(http.MethodPost, "/v1/admit", bytes.NewReader(bodies[i%len(bodies)]))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"allowed":`+allowed) {
			b.Fatalf("HTTP %d: %s", w.Code, w.Body)
		}
	}
}

// regoOnly keeps the library templates without K8sNativeValidation code.
func regoOnly(p gklibrary.Policy) bool { return !hasCEL(p) }

// hasCEL keeps the library templates that have K8sNativeValidation code.
func hasCEL(p gklibrary.Policy) bool {
	code, _, _ := unstructured.NestedSlice(p.Template.Object, "spec", "targets")
	for _, t := range code {
		m, _ := t.(map[string]any)
		entries, _ := m["code"].([]any)
		for _, e := range entries {
			if em, _ := e.(map[string]any); em["engine"] == "K8sNativeValidation" {
				return true
			}
		}
	}
	return false
}
