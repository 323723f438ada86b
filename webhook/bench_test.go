package webhook_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/webhook"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// libraryEngine loads every gatekeeper-library template with its first
// sample constraint, or skips without the library.
func libraryEngine(b *testing.B) *engine.Engine {
	b.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(root, "..", "shared", "gatekeeper-library", "library")
	if _, err := os.Stat(dir); err != nil {
		b.Skipf("Skipping: no gatekeeper-library at %s", dir)
	}
	templates, _ := filepath.Glob(filepath.Join(dir, "*", "*", "template.yaml"))
	sort.Strings(templates)
	eng, err := engine.New(engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, t := range templates {
		docs, err := manifest.ReadPath(t, nil)
		if err != nil {
			b.Fatal(err)
		}
		ct, err := engine.ParseTemplate(docs[0].Object)
		if err != nil {
			b.Fatal(err)
		}
		if err := eng.AddTemplate(ctx, ct); err != nil {
			b.Fatal(err)
		}
		samples, _ := filepath.Glob(filepath.Join(filepath.Dir(t), "samples", "*", "constraint.yaml"))
		sort.Strings(samples)
		if len(samples) == 0 {
			continue
		}
		docs, err = manifest.ReadPath(samples[0], nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := eng.AddConstraint(ctx, docs[0].Object); err != nil {
			b.Fatal(err)
		}
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
	eng := libraryEngine(b)
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

// BenchmarkReviewLibrary: the engine's part of BenchmarkAdmitLibrary.
func BenchmarkReviewLibrary(b *testing.B) {
	eng := libraryEngine(b)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	pod := podJSON("web", "default", nil, "nginx:latest", "k8s.gcr.io/busybox:latest")
	req := request("CREATE", "Pod", "default", "web", pod, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime(b))
	for i := 0; i < b.N; i++ {
		if _, err := eng.Review(ctx, &engine.Admission{Request: req, Namespace: ns, Source: engine.SourceOriginal}, engine.EnforcementPointWebhook); err != nil {
			b.Fatal(err)
		}
	}
}
