package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/mutation"
	"github.com/portcullis-dev/portcullis/webhook"
)

// libraryMutators loads the gatekeeper-library's 16 mutation samples, or
// skips without the library.
func libraryMutators(b *testing.B) *mutation.System {
	b.Helper()
	docs, err := manifest.ReadPath(testenv.MutationLibraryDir(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	s := mutation.NewSystem(mutation.Options{})
	n := 0
	for _, d := range docs {
		if !mutation.IsMutator(d.Object.GroupVersionKind()) {
			continue
		}
		m, err := mutation.New(d.Object)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Upsert(m); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if n != 16 {
		b.Fatalf("%d mutators in the library, want 16", n)
	}
	return s
}

// BenchmarkMutateLibrary: one /v1/mutate request (HTTP without TLS) for
// a two-container Pod with the library's 16 mutators, each Pod with its
// own name: mutation has no cache, so every request is mutated afresh.
func BenchmarkMutateLibrary(b *testing.B) {
	s := libraryMutators(b)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	h := webhook.NewMutationHandler(s, webhook.HandlerOptions{
		Namespaces: func(context.Context, string) (*corev1.Namespace, error) { return ns.DeepCopy(), nil },
	}, nil)
	const pods = 1000
	bodies := make([][]byte, pods)
	for i := range bodies {
		name := fmt.Sprintf("web-7c9d-%05d", i)
		pod := podJSON(name, "default", map[string]string{"app": "web"}, "nginx:1.25", "k8s.gcr.io/busybox:latest")
		bodies[i] = reviewBody(b, request("CREATE", "Pod", "default", name, pod, nil))
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime(b))
	i := 0
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, webhook.MutatePath, bytes.NewReader(bodies[i%pods]))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"patch"`)) {
			b.Fatalf("HTTP %d: %s", w.Code, w.Body)
		}
		i++
	}
}
