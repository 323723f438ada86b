package mutation_test

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/mutation"
)

// BenchmarkSystemMutate: the System's part of a request, the library's 16
// mutators on a two-container Pod (each with its own name), a copy of
// which is made for each op (the webhook decodes a fresh one).
func BenchmarkSystemMutate(b *testing.B) {
	docs, err := manifest.ReadPath(testenv.MutationLibraryDir(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	s := mutation.NewSystem(mutation.Options{})
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
	}
	pods := make([]*unstructured.Unstructured, 100)
	for i := range pods {
		pods[i] = obj(b, fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-%d\n  namespace: default\nspec:\n  containers:\n  - name: web\n    image: nginx\n  - name: sidecar\n    image: busybox\n", i))
	}
	ns := namespace("default", nil)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		o := pods[i%len(pods)].DeepCopy()
		changed, err := s.Mutate(ctx, o, ns, "Original", mutation.Create)
		if err != nil || !changed {
			b.Fatalf("Mutate = %t, %v", changed, err)
		}
		i++
	}
}
