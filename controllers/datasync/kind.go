package datasync

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	toolscache "k8s.io/client-go/tools/cache"
)

// Inventory is where synced objects go: the engine's data.inventory.
type Inventory interface {
	AddData(ctx context.Context, u *unstructured.Unstructured) error
	RemoveData(ctx context.Context, u *unstructured.Unstructured) error
}

type objectKey struct{ namespace, name string }

// kindSync keeps the objects of one kind in the inventory. A reflector
// lists and watches the kind and writes straight into it (reflectorStore),
// so that each object is held once, by the engine: the kind keeps only the
// key and resourceVersion of what it added, to apply deletions and relists
// and to wipe the kind when it is no longer synced.
type kindSync struct {
	gvk       schema.GroupVersionKind
	resource  schema.GroupVersionResource
	inv       Inventory
	transform toolscache.TransformFunc
	log       logr.Logger
	metrics   *metrics
	// onSynced is called once, after the first full list is in the
	// inventory.
	onSynced func(gvk schema.GroupVersionKind, objects int, took time.Duration)

	mu sync.Mutex
	// gen is the generation of the running reflector: writes from an
	// older one (restarted, or stopped) are dropped.
	gen      int
	stopped  bool
	cancel   context.CancelFunc
	excluded func(namespace string) bool
	objects  map[objectKey]string // resourceVersion by key
	// failed are the objects the inventory refused, for gatekeeper_sync.
	failed  map[objectKey]struct{}
	synced  bool
	started time.Time
}

// kindName is how a kind appears in logs, metrics and readiness, e.g.
// "networking.k8s.io/v1, Kind=NetworkPolicy" or "v1, Kind=Pod".
func kindName(gvk schema.GroupVersionKind) string {
	return gvk.GroupVersion().String() + ", Kind=" + gvk.Kind
}

// start runs a new reflector for the kind, stopping the previous one, with
// the given namespace exclusions. The new reflector's first list replaces
// what the kind holds: objects of newly excluded namespaces go, those of
// namespaces no longer excluded come.
func (k *kindSync) start(parent context.Context, dyn dynamic.Interface, excluded func(string) bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	if k.cancel != nil {
		k.cancel()
	}
	if k.objects == nil {
		k.objects = map[objectKey]string{}
		k.started = time.Now()
	}
	k.gen++
	k.excluded = excluded
	ctx, cancel := context.WithCancel(parent)
	k.cancel = cancel
	example := &unstructured.Unstructured{}
	example.SetGroupVersionKind(k.gvk)
	logger := k.log
	r := toolscache.NewReflectorWithOptions(k.listWatch(dyn), example, &reflectorStore{kind: k, gen: k.gen},
		toolscache.ReflectorOptions{Name: "sync " + kindName(k.gvk), TypeDescription: kindName(k.gvk), Logger: &logger})
	go r.RunWithContext(ctx)
}

// listWatch lists and watches the kind across namespaces, counting and
// logging failures (the reflector retries them with backoff).
func (k *kindSync) listWatch(dyn dynamic.Interface) toolscache.ListerWatcher {
	ri := dyn.Resource(k.resource)
	failed := func(err error, what string) {
		if err == nil {
			return
		}
		k.metrics.countError(ReasonWatch)
		k.log.Error(err, "Failed to "+what+" a synced kind, will retry", "resource", k.resource.String())
	}
	return toolscache.ToListWatcherWithWatchListSemantics(&toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			l, err := ri.List(ctx, opts)
			failed(err, "list")
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			w, err := ri.Watch(ctx, opts)
			failed(err, "watch")
			return w, err
		},
	}, dyn)
}

// stop stops the reflector and removes every object of the kind from the
// inventory. It returns how many were removed.
func (k *kindSync) stop() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	k.gen++
	if k.cancel != nil {
		k.cancel()
	}
	n := len(k.objects)
	for key := range k.objects {
		k.removeLocked(key)
	}
	k.objects = nil
	k.failed = nil
	k.metrics.deleteObjects(k.gvk)
	return n
}

// isSynced reports whether the first list is in the inventory.
func (k *kindSync) isSynced() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.synced
}

// count is the number of objects of the kind in the inventory.
func (k *kindSync) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.objects)
}

func (k *kindSync) current(gen int) bool { return gen == k.gen && !k.stopped }

func (k *kindSync) asObject(obj any) (*unstructured.Unstructured, bool) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		k.log.Error(fmt.Errorf("unexpected %T", obj), "Ignoring a synced object")
		return nil, false
	}
	if k.transform != nil {
		// Idempotent: objects of a streamed list come transformed already.
		_, _ = k.transform(u)
	}
	return u, true
}

func (k *kindSync) put(gen int, obj any) {
	k.update(gen, obj, k.putLocked)
}

func (k *kindSync) delete(gen int, obj any) {
	k.update(gen, obj, func(u *unstructured.Unstructured) {
		k.removeLocked(objectKey{u.GetNamespace(), u.GetName()})
	})
}

// update applies f, with k.mu held, to the object of an event of watch
// generation gen, unless the watch has been replaced or stopped since.
func (k *kindSync) update(gen int, obj any, f func(*unstructured.Unstructured)) {
	u, ok := k.asObject(obj)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.current(gen) {
		f(u)
		k.metrics.setObjects(k.gvk, len(k.objects), len(k.failed))
	}
}

// replace makes the inventory hold exactly the listed objects of the kind.
func (k *kindSync) replace(gen int, list []any) {
	objs := make([]*unstructured.Unstructured, 0, len(list))
	for _, obj := range list {
		if u, ok := k.asObject(obj); ok {
			objs = append(objs, u)
		}
	}
	k.mu.Lock()
	if !k.current(gen) {
		k.mu.Unlock()
		return
	}
	seen := make(map[objectKey]struct{}, len(objs))
	for _, u := range objs {
		seen[objectKey{u.GetNamespace(), u.GetName()}] = struct{}{}
		k.putLocked(u)
	}
	for key := range k.objects {
		if _, ok := seen[key]; !ok {
			k.removeLocked(key)
		}
	}
	n := len(k.objects)
	k.metrics.setObjects(k.gvk, n, len(k.failed))
	first := !k.synced
	k.synced = true
	took := time.Since(k.started)
	k.mu.Unlock()
	if first && k.onSynced != nil {
		k.onSynced(k.gvk, n, took)
	}
}

// putLocked adds or updates one object, or removes it if its namespace is
// excluded; an object whose resourceVersion is unchanged is left alone.
func (k *kindSync) putLocked(u *unstructured.Unstructured) {
	key := objectKey{u.GetNamespace(), u.GetName()}
	if k.excludedLocked(u) {
		k.removeLocked(key)
		return
	}
	rv := u.GetResourceVersion()
	if old, ok := k.objects[key]; ok && rv != "" && old == rv {
		return
	}
	u.SetGroupVersionKind(k.gvk)
	start := time.Now()
	err := k.inv.AddData(context.Background(), u)
	k.metrics.observeSync(time.Since(start))
	if err != nil {
		k.metrics.countError(ReasonInventory)
		if k.failed == nil {
			k.failed = map[objectKey]struct{}{}
		}
		k.failed[key] = struct{}{}
		k.log.Error(err, "Cannot add a synced object to the inventory", "namespace", key.namespace, "name", key.name)
		return
	}
	k.objects[key] = rv
	delete(k.failed, key)
}

func (k *kindSync) removeLocked(key objectKey) {
	delete(k.failed, key)
	if _, ok := k.objects[key]; !ok {
		return
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(k.gvk)
	u.SetNamespace(key.namespace)
	u.SetName(key.name)
	start := time.Now()
	err := k.inv.RemoveData(context.Background(), u)
	k.metrics.observeSync(time.Since(start))
	if err != nil {
		k.metrics.countError(ReasonInventory)
		k.log.Error(err, "Cannot remove a synced object from the inventory", "namespace", key.namespace, "name", key.name)
		return
	}
	delete(k.objects, key)
}

// excludedLocked reports whether the object's namespace is excluded from
// the sync; a Namespace is judged by its own name, and other cluster-scoped
// objects are never excluded.
func (k *kindSync) excludedLocked(u *unstructured.Unstructured) bool {
	if k.excluded == nil {
		return false
	}
	ns := u.GetNamespace()
	if ns == "" && k.gvk.Group == "" && k.gvk.Kind == "Namespace" {
		ns = u.GetName()
	}
	return ns != "" && k.excluded(ns)
}

// reflectorStore is the store a kind's reflector writes to: the calls of
// a reflector that was replaced or stopped are dropped.
type reflectorStore struct {
	kind *kindSync
	gen  int
}

var _ toolscache.TransformingStore = &reflectorStore{}

func (s *reflectorStore) Add(obj any) error    { s.kind.put(s.gen, obj); return nil }
func (s *reflectorStore) Update(obj any) error { s.kind.put(s.gen, obj); return nil }
func (s *reflectorStore) Delete(obj any) error { s.kind.delete(s.gen, obj); return nil }
func (s *reflectorStore) Resync() error        { return nil }

func (s *reflectorStore) Replace(list []any, _ string) error {
	s.kind.replace(s.gen, list)
	return nil
}

// Transformer lets the reflector strip objects as they arrive in a
// streamed list, before it holds them all.
func (s *reflectorStore) Transformer() toolscache.TransformFunc { return s.kind.transform }
