package datasync

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
)

// fakeInventory records the objects it holds, by namespace/name.
type fakeInventory struct {
	mu      sync.Mutex
	objects map[string]*unstructured.Unstructured
	adds    int
	failAdd bool
}

func (f *fakeInventory) AddData(_ context.Context, u *unstructured.Unstructured) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAdd {
		return errors.New("refused")
	}
	f.adds++
	f.objects[u.GetNamespace()+"/"+u.GetName()] = u
	return nil
}

func (f *fakeInventory) RemoveData(_ context.Context, u *unstructured.Unstructured) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, u.GetNamespace()+"/"+u.GetName())
	return nil
}

func (f *fakeInventory) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{}
	for k := range f.objects {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func cm(ns, name, rv string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{
			"namespace": ns, "name": name, "resourceVersion": rv,
			"managedFields": []any{map[string]any{"manager": "test"}},
		},
	}}
	return u
}

// newTestKind returns a kindSync of ConfigMaps whose reflector is not
// running: the test calls its store as a reflector would.
func newTestKind(inv Inventory, excluded ...string) (*kindSync, *reflectorStore, *[]int) {
	var synced []int
	ex := NewExclusions([]configv1alpha1.MatchEntry{{
		ExcludedNamespaces: toWildcards(excluded), Processes: []configv1alpha1.Process{configv1alpha1.ProcessSync},
	}})
	k := &kindSync{
		gvk: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, inv: inv, transform: transformFunc(false),
		log: logr.Discard(), objects: map[objectKey]string{}, gen: 1,
		excluded: func(ns string) bool { return ex.Excludes(configv1alpha1.ProcessSync, ns) },
		onSynced: func(_ schema.GroupVersionKind, n int, _ time.Duration) { synced = append(synced, n) },
	}
	return k, &reflectorStore{kind: k, gen: 1}, &synced
}

func toWildcards(s []string) []configv1alpha1.Wildcard {
	out := make([]configv1alpha1.Wildcard, len(s))
	for i, w := range s {
		out[i] = configv1alpha1.Wildcard(w)
	}
	return out
}

func TestKindStore(t *testing.T) {
	inv := &fakeInventory{objects: map[string]*unstructured.Unstructured{}}
	k, store, synced := newTestKind(inv, "kube-*")
	want := func(keys ...string) {
		t.Helper()
		if got := inv.keys(); !reflect.DeepEqual(got, append([]string{}, keys...)) {
			t.Fatalf("inventory = %v, want %v", got, keys)
		}
	}

	_ = store.Replace([]any{cm("a", "one", "1"), cm("a", "two", "1"), cm("kube-system", "x", "1")}, "1")
	want("a/one", "a/two")
	if !reflect.DeepEqual(*synced, []int{2}) || !k.isSynced() {
		t.Fatalf("onSynced calls = %v, synced %v; want one with 2 objects", *synced, k.isSynced())
	}
	stored := inv.objects["a/one"]
	if stored.GetManagedFields() != nil || stored.GetKind() != "ConfigMap" || stored.GetAPIVersion() != "v1" {
		t.Errorf("stored object: managedFields %v, %s %s; want stripped, v1 ConfigMap", stored.GetManagedFields(), stored.GetAPIVersion(), stored.GetKind())
	}

	adds := inv.adds
	_ = store.Update(cm("a", "one", "1")) // same resourceVersion: left alone
	if inv.adds != adds {
		t.Errorf("an unchanged object was written again")
	}
	_ = store.Update(cm("a", "one", "2"))
	_ = store.Add(cm("b", "three", "3"))
	_ = store.Add(cm("kube-public", "y", "3"))
	want("a/one", "a/two", "b/three")

	_ = store.Delete(toolscache.DeletedFinalStateUnknown{Key: "a/two", Obj: cm("a", "two", "1")})
	want("a/one", "b/three")

	// A relist drops what is gone.
	_ = store.Replace([]any{cm("b", "three", "3"), cm("c", "four", "4")}, "4")
	want("b/three", "c/four")
	if len(*synced) != 1 {
		t.Errorf("onSynced called %d times, want once", len(*synced))
	}

	// A restarted reflector (new exclusions) replaces the old one, whose
	// writes are dropped.
	k.mu.Lock()
	k.gen++
	k.excluded = func(ns string) bool { return ns == "c" }
	k.mu.Unlock()
	stale := store
	store = &reflectorStore{kind: k, gen: k.gen}
	_ = stale.Add(cm("d", "stale", "5"))
	_ = store.Replace([]any{cm("b", "three", "3"), cm("c", "four", "4"), cm("kube-system", "x", "1")}, "5")
	want("b/three", "kube-system/x")

	if n := k.stop(); n != 2 {
		t.Errorf("stop removed %d objects, want 2", n)
	}
	want()
	_ = store.Add(cm("e", "late", "6"))
	want()
}

func TestKindStoreInventoryError(t *testing.T) {
	inv := &fakeInventory{objects: map[string]*unstructured.Unstructured{}, failAdd: true}
	k, store, _ := newTestKind(inv)
	_ = store.Replace([]any{cm("a", "one", "1")}, "1")
	if k.count() != 0 || !k.isSynced() {
		t.Errorf("count %d, synced %v; want 0 and synced: a refused object is not tracked, and does not hold the sync back", k.count(), k.isSynced())
	}
	inv.failAdd = false
	_ = store.Replace([]any{cm("a", "one", "1")}, "1")
	if got := inv.keys(); len(got) != 1 {
		t.Errorf("after a relist, inventory = %v, want the object added", got)
	}
}

func TestConfigEventIgnoresOtherConfigs(t *testing.T) {
	var logs []string
	log := funcr.New(func(prefix, args string) { logs = append(logs, prefix+" "+args) }, funcr.Options{})
	r := &reconciler{
		config: types.NamespacedName{Namespace: "portcullis-system", Name: "config"},
		syncer: &Syncer{log: log},
	}
	mapFn := r.configEvent(reconcileRequest(r.config))
	for _, tc := range []struct{ ns, name string }{{"portcullis-system", "other"}, {"default", "config"}} {
		logs = nil
		c := &configv1alpha1.Config{}
		c.Namespace, c.Name = tc.ns, tc.name
		if reqs := mapFn(context.Background(), c); len(reqs) != 0 {
			t.Errorf("Config %s/%s: requests %v, want none", tc.ns, tc.name, reqs)
		}
		if len(logs) != 1 || !strings.Contains(logs[0], "Ignoring Config") || !strings.Contains(logs[0], tc.ns) {
			t.Errorf("Config %s/%s: logs %q, want one line saying it is ignored", tc.ns, tc.name, logs)
		}
	}
	logs = nil
	c := &configv1alpha1.Config{}
	c.Namespace, c.Name = "portcullis-system", "config"
	if reqs := mapFn(context.Background(), c); len(reqs) != 1 || len(logs) != 0 {
		t.Errorf("the Config: requests %v, logs %q; want one request, no log", reqs, logs)
	}
}

func TestKindStoreNamespacesExcludedByName(t *testing.T) {
	inv := &fakeInventory{objects: map[string]*unstructured.Unstructured{}}
	k, store, _ := newTestKind(inv, "kube-*")
	k.gvk = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
	_ = store.Replace([]any{cm("", "kube-system", "1"), cm("", "team-a", "1")}, "1")
	if got := inv.keys(); !reflect.DeepEqual(got, []string{"/team-a"}) {
		t.Errorf("synced Namespaces = %v, want team-a only: a Namespace is excluded by its own name", got)
	}
	k.gvk = schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}
	_ = store.Add(cm("", "kube-admin", "2"))
	if got := inv.keys(); len(got) != 2 {
		t.Errorf("inventory = %v: other cluster-scoped objects are never excluded", got)
	}
}
