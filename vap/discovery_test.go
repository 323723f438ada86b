package vap

import (
	"context"
	"errors"
	"testing"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
)

// flakyDiscovery fails its first fails discoveries, then serves the
// policy API.
type flakyDiscovery struct {
	discovery.DiscoveryInterface
	fails, calls int
}

func (f *flakyDiscovery) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	f.calls++
	if f.calls <= f.fails {
		return nil, errors.New("the server is currently unable to handle the request")
	}
	return &metav1.APIResourceList{GroupVersion: gv, APIResources: []metav1.APIResource{
		{Name: "validatingadmissionpolicies"}, {Name: "validatingadmissionpolicybindings"},
	}}, nil
}

// TestWaitAvailable: a discovery that fails at start-up is retried, with
// a backoff, until it answers (review finding 6); the answer is then kept.
// A context that ends stops the retries.
func TestWaitAvailable(t *testing.T) {
	d := &flakyDiscovery{fails: 2}
	r := &Reconciler{Discovery: d, Log: logr.Discard()}
	ok, err := r.WaitAvailable(t.Context())
	if err != nil || !ok || d.calls != 3 {
		t.Fatalf("WaitAvailable = %v, %v after %d discoveries; want true after 3", ok, err, d.calls)
	}
	if ok, err := r.Available(); err != nil || !ok || d.calls != 3 {
		t.Errorf("Available = %v, %v, %d discoveries; want the kept answer", ok, err, d.calls)
	}

	down := &Reconciler{Discovery: &flakyDiscovery{fails: 1 << 30}, Log: logr.Discard()}
	ctx, cancel := context.WithCancelCause(t.Context())
	stop := errors.New("stopping")
	cancel(stop)
	if ok, err := down.WaitAvailable(ctx); ok || !errors.Is(err, stop) {
		t.Errorf("with the context ended: %v, %v; want false and its cause", ok, err)
	}
}
