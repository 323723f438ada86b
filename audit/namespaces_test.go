package audit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestNamespaceCacheRetryAfter: a Namespace whose read fails is not read
// again for namespaceRetryAfter, however many of its objects are
// reviewed meanwhile; then it is, and once read it is kept, while the run
// still counts it as unknown. (A pure unit test of the cache's policy;
// TestReportsNamespaceUnreadable runs the failure through an API server.)
func TestNamespaceCacheRetryAfter(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	client := dynamicfake.NewSimpleDynamicClient(scheme, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}})
	var gets int
	failing := true
	client.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		gets++
		if failing {
			return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
		}
		return false, nil, nil
	})
	now := time.Unix(1000, 0)
	c := newNamespaceCache(client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}), logr.Discard())
	c.now = func() time.Time { return now }
	ctx := context.Background()

	for range 100 {
		if ns, err := c.get(ctx, "team-a"); err == nil || ns != nil {
			t.Fatalf("get = %v, %v; want the read's error", ns, err)
		}
	}
	if gets != 1 {
		t.Errorf("%d reads for 100 objects within %v of a failure, want 1", gets, namespaceRetryAfter)
	}

	now = now.Add(namespaceRetryAfter)
	failing = false
	ns, err := c.get(ctx, "team-a")
	if err != nil || ns == nil || ns.Name != "team-a" || gets != 2 {
		t.Fatalf("after %v: get = %v, %v after %d reads; want the Namespace, read once more", namespaceRetryAfter, ns, err, gets)
	}
	if _, err := c.get(ctx, "team-a"); err != nil || gets != 2 {
		t.Errorf("a Namespace read was read again (%d reads, %v)", gets, err)
	}
	if _, err := c.live(ctx, "team-a"); err == nil || c.errors() != 1 {
		t.Errorf("live = %v, %d namespace errors; the run must still count it unknown", err, c.errors())
	}
}
