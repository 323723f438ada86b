package webhook_test

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/portcullis-dev/portcullis/webhook"
)

// TestCachedNamespaces: the cache first, the API server for what it does
// not hold, nil for a namespace that does not exist.
func TestCachedNamespaces(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ns := func(name, src string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"from": src}}}
	}
	cache := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ns("cached", "cache")).Build()
	api := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ns("cached", "api"), ns("fresh", "api")).
		WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if key.Name == "broken" {
				return errors.New("connection refused")
			}
			return c.Get(ctx, key, obj, opts...)
		}}).Build()
	get := webhook.CachedNamespaces(cache, api)
	ctx := context.Background()
	for name, want := range map[string]string{"cached": "cache", "fresh": "api", "missing": ""} {
		got, err := get(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if (want == "") != (got == nil) || (got != nil && got.Labels["from"] != want) {
			t.Errorf("%s: got %v, want from %q", name, got, want)
		}
	}
	if _, err := get(ctx, "broken"); err == nil {
		t.Error("an API error was not returned")
	}
}
