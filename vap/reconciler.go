package vap

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// ErrAPIDisabled is the reason nothing is generated when the API server
// does not serve admissionregistration.k8s.io/v1 policies and bindings.
var ErrAPIDisabled = errors.New("validatingAdmissionPolicy API is not enabled: the API server does not serve admissionregistration.k8s.io/v1 validatingadmissionpolicies and validatingadmissionpolicybindings")

// Reconciler writes the policies of templates and the bindings of
// constraints, as the template and constraint reconcilers of a replica
// with --operation=generate ask it to. It writes an object only when it
// is missing or differs from what it should be (its spec or its
// controller), always with FieldManager; an object of the same name
// left by Gatekeeper is taken over in place. Its methods are safe for
// concurrent use.
type Reconciler struct {
	// Client reads policies, bindings, templates and CRDs through the
	// manager's cache, and writes.
	Client client.Client
	// APIReader reads from the API server: an owner after its object is
	// written, so that an owner deleted meanwhile leaves no orphan.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	// Discovery tells whether the API server serves the policy API.
	Discovery discovery.DiscoveryInterface
	// FieldManager owns every write.
	FieldManager string
	Options      Options
	// Namespace is Portcullis's own namespace, which no policy matches.
	Namespace string
	// Exempt are the exempt namespaces (see PolicyInput.Exempt).
	Exempt []string
	// Scope returns what the webhook judges now, for
	// Options.SyncEnforcementScope.
	Scope func(ctx context.Context) *Scope
	// WebhookConfiguration names the webhook's
	// ValidatingWebhookConfiguration, whose changes change Scope.
	WebhookConfiguration string
	Log                  logr.Logger

	mu        sync.Mutex
	available *bool
	policies  *tally
	bindings  *tally
	events    chan event.GenericEvent
}

// Setup registers the metrics; call it once before use.
func (r *Reconciler) Setup() error {
	m, err := getMetrics()
	if err != nil {
		return err
	}
	r.policies, r.bindings = newTally(m.policies), newTally(m.bindings)
	r.events = make(chan event.GenericEvent, 1024)
	return r.Options.Validate()
}

// Available reports whether the API server serves the v1 policy API.
// The answer is kept once known; a discovery error is returned, and
// asked again next time.
func (r *Reconciler) Available() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.available != nil {
		return *r.available, nil
	}
	list, err := r.Discovery.ServerResourcesForGroupVersion(admissionregistrationv1.SchemeGroupVersion.String())
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("discovering %s: %w", admissionregistrationv1.SchemeGroupVersion, err)
	}
	found := 0
	if list != nil {
		for _, res := range list.APIResources {
			if res.Name == "validatingadmissionpolicies" || res.Name == "validatingadmissionpolicybindings" {
				found++
			}
		}
	}
	ok := found == 2
	r.available = &ok
	return ok, nil
}

// Discovery backoff of WaitAvailable: the wait between two attempts
// doubles from the first to the cap.
const (
	discoveryRetryFirst = time.Second
	discoveryRetryCap   = 2 * time.Minute
)

// WaitAvailable asks Available until it knows the answer: a failed
// discovery (the API server restarting, a timeout) is logged and retried
// after a wait doubling from 1s to at most 2 minutes, so that a transient
// failure at start-up decides nothing for good. It returns ctx's cause
// when ctx ends first.
func (r *Reconciler) WaitAvailable(ctx context.Context) (bool, error) {
	backoff := wait.Backoff{Duration: discoveryRetryFirst, Factor: 2, Cap: discoveryRetryCap, Steps: math.MaxInt32}
	for {
		ok, err := r.Available()
		if err == nil {
			return ok, nil
		}
		delay := backoff.Step()
		r.Log.Error(err, "Discovering the ValidatingAdmissionPolicy API failed; retrying", "after", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// Events are the templates to reconcile again because what the webhook
// judges changed: the template controller watches them.
func (r *Reconciler) Events() <-chan event.GenericEvent { return r.events }

// apply creates desired, or, when an object of its name exists, sets its
// spec and controller to desired's (keeping its other owners, labels and
// annotations) and updates it if that changed anything. It reports
// whether it wrote.
func apply[T client.Object](ctx context.Context, r *Reconciler, desired, existing T, spec func(T) any, setSpec func(dst, src T)) (bool, error) {
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	if apierrors.IsNotFound(err) {
		if err := r.Client.Create(ctx, desired, client.FieldOwner(r.FieldManager)); err != nil {
			return false, err
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	want := existing.DeepCopyObject().(T)
	setSpec(want, desired)
	want.SetOwnerReferences(withController(existing.GetOwnerReferences(), metav1.GetControllerOf(desired)))
	if equality.Semantic.DeepEqual(spec(existing), spec(want)) &&
		equality.Semantic.DeepEqual(existing.GetOwnerReferences(), want.GetOwnerReferences()) {
		return false, nil
	}
	if err := r.Client.Update(ctx, want, client.FieldOwner(r.FieldManager)); err != nil {
		return false, err
	}
	return true, nil
}

// withController replaces the controller among refs by owner.
func withController(refs []metav1.OwnerReference, owner *metav1.OwnerReference) []metav1.OwnerReference {
	out := make([]metav1.OwnerReference, 0, len(refs)+1)
	for _, ref := range refs {
		if (ref.Controller != nil && *ref.Controller) || (owner != nil && ref.UID == owner.UID) {
			continue
		}
		out = append(out, ref)
	}
	if owner != nil {
		out = append(out, *owner)
	}
	return out
}

// remove deletes obj (its name set) unless it is gone already; keep, when
// not nil, is asked first with the object as read and may spare it. It
// reads the cache, or with live the API server: an object just created
// may not be in the cache yet. It reports whether it deleted.
func remove[T client.Object](ctx context.Context, r *Reconciler, obj T, keep func(T) bool, live bool) (bool, error) {
	var reader client.Reader = r.Client
	if live {
		reader = r.APIReader
	}
	if err := reader.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if keep != nil && keep(obj) {
		return false, nil
	}
	uid := obj.GetUID()
	err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return false, nil
	}
	return err == nil, err
}

// refused reports whether the API server refused a write for good (the
// object is invalid or the write forbidden), which retrying will not
// change until the template or constraint does.
func refused(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err)
}
