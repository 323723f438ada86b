package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	"github.com/portcullis-dev/portcullis/internal/readiness"
	"github.com/portcullis-dev/portcullis/mutation"
)

// MutatorGVR is the resource of a mutator kind, at its storage version.
func MutatorGVR(kind string) schema.GroupVersionResource {
	version := "v1"
	if kind == mutation.KindAssignImage {
		version = "v1alpha1"
	}
	return schema.GroupVersionResource{Group: mutationsv1.Group, Version: version, Resource: strings.ToLower(kind)}
}

// MutatorGVK is a mutator kind at its storage version.
func MutatorGVK(kind string) schema.GroupVersionKind {
	gvr := MutatorGVR(kind)
	return schema.GroupVersionKind{Group: gvr.Group, Version: gvr.Version, Kind: kind}
}

// Mutators loads the mutators of every kind (Assign, AssignImage,
// AssignMetadata, ModifySet) into a mutation.System, and writes this
// replica's status.byPod entry and the Ready condition of each. A mutator
// that does not compile, or that is in a schema conflict with another, is
// not applied, and its entry says why; when a conflict ends, the other
// mutators it involved are reconciled again.
type Mutators struct {
	// Client reads mutators through the manager's cache.
	Client client.Client
	// Reader lists the mutators at startup, for readiness.
	Reader client.Reader
	// Dynamic writes their status.
	Dynamic dynamic.Interface
	System  *mutation.System
	Tracker *readiness.Tracker
	// Replica identifies this replica in status.byPod.
	Replica Replica

	events  map[string]chan event.GenericEvent // by kind
	metrics *mutatorMetrics
	tally   metricTally
}

// SetupWithManager adds one controller per mutator kind, and the lister
// that tells the readiness tracker which mutators exist at startup. Every
// replica runs them.
func (r *Mutators) SetupWithManager(mgr ctrl.Manager) error {
	m, err := newMutatorMetrics()
	if err != nil {
		return err
	}
	r.metrics = m
	r.Tracker.RequireMutators()
	r.events = map[string]chan event.GenericEvent{}
	for _, kind := range mutation.Kinds {
		ch := make(chan event.GenericEvent, 1024)
		r.events[kind] = ch
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(MutatorGVK(kind))
		name := "mutator-" + strings.ToLower(kind)
		base := mgr.GetLogger().WithValues("controller", name)
		err := ctrl.NewControllerManagedBy(mgr).
			Named(name).
			For(u).
			WatchesRawSource(source.Channel(ch, &handler.EnqueueRequestForObject{})).
			WithOptions(controller.Options{
				MaxConcurrentReconciles: 1,
				NeedLeaderElection:      new(false),
				LogConstructor: func(req *reconcile.Request) logr.Logger {
					if req == nil {
						return base
					}
					return base.WithValues("kind", kind, "name", req.Name)
				},
			}).
			Complete(&mutatorReconciler{Mutators: r, kind: kind})
		if err != nil {
			return fmt.Errorf("setting up the %s controller: %w", kind, err)
		}
	}
	lists := make([]schema.GroupVersionKind, 0, len(mutation.Kinds))
	for _, kind := range mutation.Kinds {
		gvk := MutatorGVK(kind)
		gvk.Kind += "List"
		lists = append(lists, gvk)
	}
	return mgr.Add(&readiness.Lister{
		Reader: r.Reader, Lists: lists, What: "mutators", Expect: r.Tracker.ExpectMutators,
		Key: func(list schema.GroupVersionKind, name string) string {
			return strings.TrimSuffix(list.Kind, "List") + "/" + name
		},
	})
}

// +kubebuilder:rbac:groups=mutations.gatekeeper.sh,resources=*,verbs=get;list;watch
// +kubebuilder:rbac:groups=mutations.gatekeeper.sh,resources=*/status,verbs=get;update;patch

// mutatorReconciler reconciles the mutators of one kind.
type mutatorReconciler struct {
	*Mutators
	kind string
}

// Reconcile loads one mutator into the System, or removes it.
func (r *mutatorReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := log.FromContext(ctx)
	id := mutation.ID{Kind: r.kind, Name: req.Name}
	key := r.kind + "/" + req.Name
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(MutatorGVK(r.kind))
	err := r.Client.Get(ctx, client.ObjectKey{Name: req.Name}, u)
	if client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, err
	}
	if apierrors.IsNotFound(err) || !u.GetDeletionTimestamp().IsZero() {
		r.requeue(r.System.Remove(id))
		r.metrics.report(&r.tally, r.System, key, nil)
		r.Tracker.MutatorDone(key)
		log.V(1).Info("Mutator removed")
		return reconcile.Result{}, nil
	}

	start := time.Now()
	entry := mutationsv1.MutatorPodStatus{
		ID: r.Replica.ID, MutatorUID: u.GetUID(), Operations: r.Replica.SortedOperations(), ObservedGeneration: u.GetGeneration(),
	}
	m, err := mutation.New(u)
	if err != nil {
		// What the status says is what is applied: not this mutator.
		r.requeue(r.System.Remove(id))
		entry.Errors = []mutationsv1.MutatorError{{Message: err.Error()}}
	} else {
		affected, cerr := r.System.Upsert(m)
		r.requeue(affected)
		if cerr != nil {
			entry.Errors = []mutationsv1.MutatorError{{Type: mutation.ConflictType, Message: cerr.Error()}}
		} else {
			entry.Enforced = true
		}
	}
	r.metrics.observeIngestion(entry.Enforced, time.Since(start))
	r.metrics.report(&r.tally, r.System, key, &entry.Enforced)
	wrote, err := r.writeStatus(ctx, u, &entry)
	if err != nil {
		return reconcile.Result{}, err
	}
	if wrote {
		if entry.Enforced {
			log.Info("Mutator enforced", "generation", entry.ObservedGeneration)
		} else {
			log.Info("Mutator not enforced", "error", entry.Errors[0].Message)
		}
	}
	r.Tracker.MutatorDone(key)
	return reconcile.Result{}, nil
}

// requeue reconciles again the mutators whose conflicts changed.
func (r *Mutators) requeue(ids []mutation.ID) {
	for _, id := range ids {
		ch, ok := r.events[id.Kind]
		if !ok {
			continue
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(MutatorGVK(id.Kind))
		u.SetName(id.Name)
		ch <- event.GenericEvent{Object: u}
	}
}

// writeStatus writes this replica's entry and the Ready condition.
func (r *mutatorReconciler) writeStatus(ctx context.Context, u *unstructured.Unstructured, entry *mutationsv1.MutatorPodStatus) (bool, error) {
	w := resourceWriter(r.Dynamic.Resource(MutatorGVR(r.kind)), r.kind, u.GetName(), u.GetUID())
	return writeStatus(ctx, u, w, func(cur map[string]any) (map[string]any, error) {
		status := copyStatus(cur)
		m, err := toUnstructuredMap(entry)
		if err != nil {
			return nil, err
		}
		setByPod(status, m)
		if err := setMutatorReady(status, entry.ObservedGeneration); err != nil {
			return nil, err
		}
		return status, nil
	})
}

// setMutatorReady sets the Ready condition of a mutator at generation
// from its byPod entries.
func setMutatorReady(status map[string]any, generation int64) error {
	return setReady(status, generation, "mutator")
}
