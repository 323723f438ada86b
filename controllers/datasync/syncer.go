package datasync

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	toolscache "k8s.io/client-go/tools/cache"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	"github.com/portcullis-dev/portcullis/internal/readiness"
)

// Syncer runs one kindSync per synced kind. Apply sets the kinds; the
// watches stop with the manager (Start). Its methods are safe for
// concurrent use.
type Syncer struct {
	dyn       dynamic.Interface
	mapper    meta.RESTMapper
	inv       Inventory
	tracker   *readiness.Tracker
	transform toolscache.TransformFunc
	log       logr.Logger
	metrics   *metrics

	// base outlives reconciles: every reflector runs in a child of it.
	base   context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	kinds      map[schema.GroupVersionKind]*kindSync
	exclusions Exclusions
	// wanted are the kinds the last Apply asked for, served or not.
	wanted int
}

func newSyncer(dyn dynamic.Interface, mapper meta.RESTMapper, inv Inventory, tracker *readiness.Tracker,
	transform toolscache.TransformFunc, log logr.Logger, m *metrics) *Syncer {
	ctx, cancel := context.WithCancel(context.Background())
	return &Syncer{
		dyn: dyn, mapper: mapper, inv: inv, tracker: tracker, transform: transform, log: log, metrics: m,
		base: ctx, cancel: cancel, kinds: map[schema.GroupVersionKind]*kindSync{},
	}
}

// Start implements manager.Runnable: it stops every watch when ctx ends.
func (s *Syncer) Start(ctx context.Context) error {
	<-ctx.Done()
	s.cancel()
	return nil
}

// NeedLeaderElection is false: every replica fills its own engine.
func (s *Syncer) NeedLeaderElection() bool { return false }

// Apply makes want the synced kinds, with the namespaces ex excludes from
// the sync. Kinds no longer wanted are wiped from the inventory and their
// watches stopped; new kinds start syncing; if the exclusions changed, the
// kinds already synced are listed again under them. It returns the kinds
// that cannot be synced, because the API server does not serve them, with
// why; the others sync regardless.
func (s *Syncer) Apply(want []schema.GroupVersionKind, ex Exclusions) map[schema.GroupVersionKind]error {
	s.mu.Lock()
	defer s.mu.Unlock()
	exChanged := !s.exclusions.Equal(ex, configv1alpha1.ProcessSync)
	s.exclusions = ex
	excluded := func(ns string) bool { return ex.Excludes(configv1alpha1.ProcessSync, ns) }

	wanted := make(map[schema.GroupVersionKind]bool, len(want))
	for _, gvk := range want {
		wanted[gvk] = true
	}
	s.wanted = len(wanted)
	for gvk, k := range s.kinds {
		if wanted[gvk] {
			continue
		}
		n := k.stop()
		delete(s.kinds, gvk)
		s.tracker.DataDone(kindName(gvk))
		s.log.Info("Stopped syncing a kind and removed it from the inventory", "kind", kindName(gvk), "objects", n)
	}
	errs := map[schema.GroupVersionKind]error{}
	for _, gvk := range want {
		if k, ok := s.kinds[gvk]; ok {
			if exChanged {
				k.start(s.base, s.dyn, excluded)
			}
			continue
		}
		mapping, err := s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			errs[gvk] = fmt.Errorf("kind %s is not served: %w", kindName(gvk), err)
			// Readiness does not wait for a kind that cannot sync.
			s.tracker.DataDone(kindName(gvk))
			continue
		}
		k := &kindSync{
			gvk: gvk, resource: mapping.Resource, inv: s.inv, transform: s.transform,
			log: s.log.WithValues("kind", kindName(gvk)), metrics: s.metrics, onSynced: s.synced,
		}
		s.kinds[gvk] = k
		k.start(s.base, s.dyn, excluded)
		s.log.Info("Started syncing a kind", "kind", kindName(gvk), "resource", mapping.Resource.String())
	}
	return errs
}

func (s *Syncer) synced(gvk schema.GroupVersionKind, objects int, took time.Duration) {
	s.tracker.DataDone(kindName(gvk))
	s.log.Info("Synced a kind into the inventory", "kind", kindName(gvk), "objects", objects, "took", took.String())
}

// Wanted is the number of distinct kinds the Config and the SyncSets ask
// for, whether or not they can be synced.
func (s *Syncer) Wanted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wanted
}

// Kinds lists the kinds synced or syncing, sorted.
func (s *Syncer) Kinds() []schema.GroupVersionKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]schema.GroupVersionKind, 0, len(s.kinds))
	for gvk := range s.kinds {
		out = append(out, gvk)
	}
	sort.Slice(out, func(i, j int) bool { return kindName(out[i]) < kindName(out[j]) })
	return out
}

// Count is the number of objects of a kind in the inventory, and whether
// the kind is synced (its first list complete).
func (s *Syncer) Count(gvk schema.GroupVersionKind) (objects int, synced bool) {
	s.mu.Lock()
	k, ok := s.kinds[gvk]
	s.mu.Unlock()
	if !ok {
		return 0, false
	}
	return k.count(), k.isSynced()
}

// Ready reports whether every kind being synced has completed its first
// list. Unlike the readiness tracker, it goes back to not ready while a
// newly listed kind syncs.
func (s *Syncer) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pending []string
	for gvk, k := range s.kinds {
		if !k.isSynced() {
			pending = append(pending, kindName(gvk))
		}
	}
	if len(pending) == 0 {
		return nil
	}
	sort.Strings(pending)
	return fmt.Errorf("%d of %d synced kinds not synced yet, e.g. %q", len(pending), len(s.kinds), pending[0])
}
