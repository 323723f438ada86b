package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// ConstraintGroup is the API group of every constraint kind.
const ConstraintGroup = "constraints.gatekeeper.sh"

// constraintVersion is the version constraints are watched and written at:
// the storage version of the CRDs frameworks generates.
const constraintVersion = "v1beta1"

// ConstraintGVR is the resource of a constraint kind: frameworks names it
// with the lowercase kind, singular.
func ConstraintGVR(kind string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: ConstraintGroup, Version: constraintVersion, Resource: strings.ToLower(kind)}
}

// ConstraintGVK is the kind of a constraint, at the version it is watched.
func ConstraintGVK(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: ConstraintGroup, Version: constraintVersion, Kind: kind}
}

// ConstraintRequest names one constraint. Constraints are cluster-scoped and
// one controller reconciles every kind, so a request carries the kind.
type ConstraintRequest struct {
	Kind string
	Name string
}

func (r ConstraintRequest) String() string { return r.Kind + "/" + r.Name }

// Watches runs one informer per constraint kind, started and stopped by the
// template reconciler as templates come and go. Their events feed the
// constraint reconciler (Source), which reads constraints from their stores
// (Get), so every constraint kind is watched once and only while its
// template exists. The informers stop when the manager stops (Start).
type Watches struct {
	dynamic dynamic.Interface
	log     logr.Logger

	// base outlives reconciles: each informer runs in a child of it.
	base   context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	kinds   map[string]*kindWatch
	queue   workqueue.TypedRateLimitingInterface[ConstraintRequest]
	pending []ConstraintRequest // events before the constraint controller started
}

type kindWatch struct {
	informer toolscache.SharedIndexInformer
	cancel   context.CancelFunc
}

// NewWatches returns a registry with no watches.
func NewWatches(dyn dynamic.Interface, log logr.Logger) *Watches {
	ctx, cancel := context.WithCancel(context.Background())
	return &Watches{dynamic: dyn, log: log, base: ctx, cancel: cancel, kinds: map[string]*kindWatch{}}
}

// Start implements manager.Runnable: it stops every informer when ctx ends.
func (w *Watches) Start(ctx context.Context) error {
	<-ctx.Done()
	w.cancel()
	return nil
}

// NeedLeaderElection is false: every replica loads its own engine.
func (w *Watches) NeedLeaderElection() bool { return false }

// Ensure starts the informer for kind unless it runs already, and waits
// until its store is synced or ctx ends.
func (w *Watches) Ensure(ctx context.Context, kind string) error {
	w.mu.Lock()
	kw, ok := w.kinds[kind]
	if !ok {
		gvr := ConstraintGVR(kind)
		inf := dynamicinformer.NewFilteredDynamicInformer(w.dynamic, gvr, "", 0, toolscache.Indexers{}, nil).Informer()
		if _, err := inf.AddEventHandler(w.handler(kind)); err != nil {
			w.mu.Unlock()
			return fmt.Errorf("watching %s: %w", gvr, err)
		}
		ictx, cancel := context.WithCancel(w.base)
		kw = &kindWatch{informer: inf, cancel: cancel}
		w.kinds[kind] = kw
		go inf.RunWithContext(ictx)
		w.log.Info("Started watch", "kind", kind, "resource", gvr.String())
	}
	w.mu.Unlock()
	if !toolscache.WaitForCacheSync(ctx.Done(), kw.informer.HasSynced) {
		return fmt.Errorf("waiting for the %s watch to sync: %w", kind, context.Cause(ctx))
	}
	return nil
}

// Remove stops the informer for kind, if any.
func (w *Watches) Remove(kind string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if kw, ok := w.kinds[kind]; ok {
		kw.cancel()
		delete(w.kinds, kind)
		w.log.Info("Stopped watch", "kind", kind)
	}
}

// Watching reports whether kind has an informer.
func (w *Watches) Watching(kind string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.kinds[kind]
	return ok
}

// Synced reports whether kind has an informer that has listed it: only
// then does a constraint missing from its store not exist.
func (w *Watches) Synced(kind string) bool {
	w.mu.Lock()
	kw, ok := w.kinds[kind]
	w.mu.Unlock()
	return ok && kw.informer.HasSynced()
}

// Kinds lists the watched kinds, sorted.
func (w *Watches) Kinds() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.kinds))
	for k := range w.kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Get returns a copy of a constraint from its kind's store; found is false
// when the kind is not watched or the constraint does not exist.
func (w *Watches) Get(kind, name string) (u *unstructured.Unstructured, found bool, err error) {
	w.mu.Lock()
	kw, ok := w.kinds[kind]
	w.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	obj, exists, err := kw.informer.GetStore().GetByKey(name)
	if err != nil || !exists {
		return nil, false, err
	}
	cu, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, false, fmt.Errorf("%s %q in store is a %T", kind, name, obj)
	}
	return cu.DeepCopy(), true, nil
}

// Names lists the constraints of kind in its store, sorted.
func (w *Watches) Names(kind string) []string {
	w.mu.Lock()
	kw, ok := w.kinds[kind]
	w.mu.Unlock()
	if !ok {
		return nil
	}
	names := kw.informer.GetStore().ListKeys()
	sort.Strings(names)
	return names
}

// EnqueueAll asks the constraint reconciler to look at every constraint of
// kind again, e.g. after its template changed.
func (w *Watches) EnqueueAll(kind string) {
	for _, n := range w.Names(kind) {
		w.enqueue(ConstraintRequest{Kind: kind, Name: n})
	}
}

func (w *Watches) enqueue(req ConstraintRequest) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.queue == nil {
		w.pending = append(w.pending, req)
		return
	}
	w.queue.Add(req)
}

func (w *Watches) handler(kind string) toolscache.ResourceEventHandler {
	add := func(obj any) {
		// Cluster-scoped: the store key is the name.
		name, err := toolscache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err != nil {
			w.log.Error(err, "Ignoring event", "kind", kind)
			return
		}
		w.enqueue(ConstraintRequest{Kind: kind, Name: name})
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    add,
		UpdateFunc: func(_, obj any) { add(obj) },
		DeleteFunc: add,
	}
}

// Source is the event source of the constraint controller.
func (w *Watches) Source() source.TypedSource[ConstraintRequest] { return watchSource{w} }

type watchSource struct{ w *Watches }

// Start hands the controller's queue to the watches and replays events
// that came before it.
func (s watchSource) Start(_ context.Context, q workqueue.TypedRateLimitingInterface[ConstraintRequest]) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.w.queue = q
	for _, r := range s.w.pending {
		q.Add(r)
	}
	s.w.pending = nil
	return nil
}
