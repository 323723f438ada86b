package mutation

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ErrNotConverging reports a set of mutators that keeps changing an
// object.
var ErrNotConverging = errors.New("mutation not converging")

// Options configure a System.
type Options struct {
	// Annotations adds gatekeeper.sh/mutation-id and gatekeeper.sh/mutations
	// to every object mutated (--mutation-annotations).
	Annotations bool
	// LogMutations logs every object mutated, with the mutators applied in
	// each iteration (--log-mutations).
	LogMutations bool
	// Log receives those logs.
	Log logr.Logger
	// Metrics records the iterations of each Mutate; nil records nothing.
	Metrics IterationRecorder
	// NewID returns the ID of a mutation, in annotations, logs and errors.
	// Default: a random UUID.
	NewID func() string
}

// IterationRecorder records how many iterations a Mutate took, and
// whether the object converged (gatekeeper_mutation_system_iterations).
type IterationRecorder interface {
	RecordIterations(converged bool, iterations int)
}

// System holds the mutators and applies them: sorted by kind then name,
// the whole set again and again until the object stops changing, at most
// one more time than there are mutators. Mutators in a schema conflict
// are held but not applied. Mutate takes no lock: it reads an immutable
// snapshot that Upsert and Remove replace.
type System struct {
	opts Options

	mu        sync.Mutex // serializes Upsert and Remove
	mutators  map[ID]*Mutator
	conflicts map[ID][]ID
	snap      atomic.Pointer[snapshot]
}

// snapshot is what Mutate reads.
type snapshot struct {
	// active are the mutators applied, in order.
	active []*Mutator
	// total counts every mutator, in conflict or not: the iteration bound
	// is total+1.
	total int
}

// NewSystem returns an empty System.
func NewSystem(opts Options) *System {
	if opts.NewID == nil {
		opts.NewID = uuid.NewString
	}
	s := &System{opts: opts, mutators: map[ID]*Mutator{}, conflicts: map[ID][]ID{}}
	s.snap.Store(&snapshot{})
	return s
}

// Upsert adds m, or replaces the mutator of the same ID. It returns the
// IDs of the other mutators whose conflicts changed (their status is to
// be written again), and a *ConflictError when m itself is in conflict:
// m is held then, and applied once the conflict is gone.
func (s *System) Upsert(m *Mutator) ([]ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.mutators[m.id]; ok && old.sameAs(m) {
		return nil, s.conflictErr(m.id)
	}
	s.mutators[m.id] = m
	changed := s.update()
	return without(changed, m.id), s.conflictErr(m.id)
}

// Remove removes the mutator id, if held. It returns the IDs of the
// mutators whose conflicts changed.
func (s *System) Remove(id ID) []ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mutators[id]; !ok {
		return nil
	}
	delete(s.mutators, id)
	return without(s.update(), id)
}

// Get returns the mutator id, nil if not held.
func (s *System) Get(id ID) *Mutator {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mutators[id]
}

// Conflicts returns the error of the mutator id's schema conflict, nil
// when it has none.
func (s *System) Conflicts(id ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conflictErr(id)
}

// Counts returns how many mutators are held, and how many of them are in
// conflict.
func (s *System) Counts() (total, conflicting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mutators), len(s.conflicts)
}

// IDs returns the IDs of the mutators held, in the order they apply.
func (s *System) IDs() []ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.SortedFunc(maps.Keys(s.mutators), ID.compare)
}

func (s *System) conflictErr(id ID) error {
	if ids, ok := s.conflicts[id]; ok {
		return &ConflictError{IDs: ids}
	}
	return nil
}

// update recomputes the conflicts and the snapshot, and returns the IDs
// whose conflicts changed. s.mu is held.
func (s *System) update() []ID {
	all := slices.SortedFunc(maps.Values(s.mutators), func(a, b *Mutator) int { return a.id.compare(b.id) })
	conflicts := findConflicts(all)
	var changed []ID
	for id := range s.mutators {
		if !slices.Equal(conflicts[id], s.conflicts[id]) {
			changed = append(changed, id)
		}
	}
	for id := range s.conflicts {
		if _, ok := s.mutators[id]; !ok {
			changed = append(changed, id)
		}
	}
	s.conflicts = conflicts
	active := make([]*Mutator, 0, len(all))
	for _, m := range all {
		if _, ok := conflicts[m.id]; !ok {
			active = append(active, m)
		}
	}
	s.snap.Store(&snapshot{active: active, total: len(all)})
	slices.SortFunc(changed, ID.compare)
	return changed
}

func without(ids []ID, id ID) []ID {
	return slices.DeleteFunc(ids, func(x ID) bool { return x == id })
}

// Mutate applies the mutators to obj and reports whether it changed. ns is
// obj's Namespace (nil for a cluster-scoped object, or when unknown: then
// a namespaceSelector on a namespaced object is an error); source is
// engine.SourceOriginal, or engine.SourceGenerated for objects expanded
// from a workload; op is the admission operation, None outside admission.
// obj's namespace is the one fromMetadata assigns and the match reads.
//
// obj is changed only when Mutate succeeds: on an error it is left as it
// was, never half mutated.
func (s *System) Mutate(ctx context.Context, obj *unstructured.Unstructured, ns *corev1.Namespace, source string, op Operation) (bool, error) {
	snap := s.snap.Load()
	if len(snap.active) == 0 {
		return false, nil
	}
	work := obj.DeepCopy()
	maxIterations := snap.total + 1
	var applied [][]*Mutator
	var mutationID string
	// prev is the object before the iteration: it has converged when an
	// iteration ends where it started (mutators may undo one another).
	prev := obj
	for it := 1; it <= maxIterations; it++ {
		if err := ctx.Err(); err != nil {
			s.record(false, it)
			return false, fmt.Errorf("mutating %s: %w", describeObject(obj), err)
		}
		if it > 1 {
			prev = work.DeepCopy()
		}
		var this []*Mutator
		changed := false
		for _, m := range snap.active {
			ok, err := m.matches(work, ns, source, op)
			if err != nil {
				s.record(false, it)
				return false, fmt.Errorf("matching for mutator %s failed for %s: %w", m.id, describeObject(obj), err)
			}
			if !ok {
				continue
			}
			o, err := m.apply(work)
			if err != nil {
				if mutationID == "" {
					mutationID = s.opts.NewID()
				}
				s.record(false, it)
				return false, fmt.Errorf("mutation %s for mutator %s failed for %s: %w", mutationID, m.id, describeObject(obj), err)
			}
			if o.reached {
				this = append(this, m)
			}
			changed = changed || o.changed
		}
		if !changed || equalJSON(prev.Object, work.Object) {
			if it == 1 {
				s.record(true, 0)
				return false, nil
			}
			if mutationID == "" {
				mutationID = s.opts.NewID()
			}
			s.finish(obj, work, mutationID, source, applied)
			obj.Object = work.Object
			s.record(true, it)
			return true, nil
		}
		applied = append(applied, this)
	}
	if mutationID == "" {
		mutationID = s.opts.NewID()
	}
	if s.opts.LogMutations {
		s.logApplied("Mutation not converging", mutationID, obj, source, applied)
	}
	s.record(false, maxIterations)
	return false, fmt.Errorf("%w: mutation %s not converging for %s", ErrNotConverging, mutationID, describeObject(obj))
}

func (s *System) record(converged bool, iterations int) {
	if s.opts.Metrics != nil {
		s.opts.Metrics.RecordIterations(converged, iterations)
	}
}

// describeObject names an object as Gatekeeper's mutation errors do:
// group, kind, namespace and name (or generateName), space-separated.
func describeObject(obj *unstructured.Unstructured) string {
	gvk := obj.GroupVersionKind()
	name := obj.GetName()
	if name == "" {
		name = obj.GetGenerateName()
	}
	return fmt.Sprintf("%s %s %s %s", gvk.Group, gvk.Kind, obj.GetNamespace(), name)
}
