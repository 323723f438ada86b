package controllers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	"github.com/portcullis-dev/portcullis/mutation"
)

// A replica is alive while its heartbeat Lease says so. Each replica
// renews a Lease of its own, named HeartbeatLeasePrefix + its ID, in its
// namespace, and deletes it when it stops. In a cluster (a Pod named as
// the replica's ID exists in the namespace) the Lease is owned by that
// Pod: the replica is gone once the Pod is, and the garbage collector
// deletes the Lease. Outside a cluster the replica is gone once the Lease
// has not been renewed for its leaseDurationSeconds. An ID with no Lease
// at all (a Gatekeeper pod, before the switch) is alive while a Pod of
// that name exists. The Pruner removes the byPod entries of the replicas
// that are gone, so that rollouts leave no garbage.
const (
	// HeartbeatLeasePrefix starts the name of each replica's Lease.
	HeartbeatLeasePrefix = "portcullis-replica-"
	// HeartbeatLabel marks the heartbeat Leases.
	HeartbeatLabel = "portcullis.dev/replica-heartbeat"
	// DefaultHeartbeatDuration is how long a heartbeat lasts unrenewed;
	// replicas renew, and the pruner looks, four times as often.
	DefaultHeartbeatDuration = 40 * time.Second
)

var leaseNameInvalid = regexp.MustCompile(`[^a-z0-9.-]+`)

// HeartbeatLeaseName is the name of the heartbeat Lease of replica id.
func HeartbeatLeaseName(id string) string {
	name := HeartbeatLeasePrefix + strings.Trim(leaseNameInvalid.ReplaceAllString(strings.ToLower(id), "-"), "-.")
	if len(name) > 253 {
		name = name[:253]
	}
	return name
}

// Heartbeat renews this replica's Lease until its context ends, then
// deletes it. Beat once before the manager starts writing status, so that
// no pruner sees this replica's entries without its Lease.
type Heartbeat struct {
	// Client writes the Lease; Reader reads it and the Pod without a cache.
	Client    client.Client
	Reader    client.Reader
	Namespace string
	ID        string
	// Duration is how long a beat lasts (leaseDurationSeconds).
	Duration time.Duration
	Log      logr.Logger

	pod    *metav1.OwnerReference // this replica's Pod, once looked up
	looked bool
}

// NeedLeaderElection is false: every replica beats.
func (h *Heartbeat) NeedLeaderElection() bool { return false }

// Start beats every Duration/4 until ctx ends, then deletes the Lease.
func (h *Heartbeat) Start(ctx context.Context) error {
	failing := false
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := h.Beat(ctx); err != nil {
			if !failing && ctx.Err() == nil {
				h.Log.Error(err, "Renewing the replica heartbeat Lease; other replicas may take this one for gone and remove its status entries")
			}
			failing = true
			return
		}
		failing = false
	}, h.Duration/4)
	del, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: h.Namespace, Name: HeartbeatLeaseName(h.ID)}}
	if err := h.Client.Delete(del, lease); client.IgnoreNotFound(err) != nil {
		h.Log.Error(err, "Deleting the replica heartbeat Lease")
	}
	return nil
}

// Beat creates or renews the Lease.
func (h *Heartbeat) Beat(ctx context.Context) error {
	if !h.looked {
		pod := &corev1.Pod{}
		err := h.Reader.Get(ctx, client.ObjectKey{Namespace: h.Namespace, Name: h.ID}, pod)
		switch {
		case err == nil:
			h.pod = &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}
			h.looked = true
		case apierrors.IsNotFound(err):
			h.looked = true // not in a cluster, or not a Pod's name
		default:
			h.Log.V(1).Info("Looking up this replica's Pod", "error", err.Error())
		}
	}
	now := metav1.NewMicroTime(time.Now())
	secs := int32(max(h.Duration/time.Second, 1))
	key := client.ObjectKey{Namespace: h.Namespace, Name: HeartbeatLeaseName(h.ID)}
	lease := &coordinationv1.Lease{}
	err := h.Reader.Get(ctx, key, lease)
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		h.fill(lease, now, secs)
		lease.Spec.AcquireTime = &now
		if err := h.Client.Create(ctx, lease, client.FieldOwner(FieldManager)); err != nil {
			return fmt.Errorf("creating Lease %s: %w", key, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting Lease %s: %w", key, err)
	}
	h.fill(lease, now, secs)
	if err := h.Client.Update(ctx, lease, client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("renewing Lease %s: %w", key, err)
	}
	return nil
}

func (h *Heartbeat) fill(lease *coordinationv1.Lease, now metav1.MicroTime, secs int32) {
	labels := lease.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[HeartbeatLabel] = "yes"
	lease.SetLabels(labels)
	if h.pod != nil {
		lease.SetOwnerReferences([]metav1.OwnerReference{*h.pod})
	}
	lease.Spec.HolderIdentity = &h.ID
	lease.Spec.LeaseDurationSeconds = &secs
	lease.Spec.RenewTime = &now
}

// errNoHeartbeat skips a pruning pass while this replica's own Lease is
// missing: the namespace may be gone or the Leases unreadable, and every
// replica would look gone.
var errNoHeartbeat = errors.New("this replica's own heartbeat Lease is missing: not pruning")

// Pruner removes from the status.byPod of templates, constraints, the
// Config and mutators the entries of replicas that are gone. It runs on
// the leader of the replicas with --operation=status or mutation-status.
type Pruner struct {
	// Client reads templates and the Config from the manager's cache and
	// deletes stale Leases; Reader reads Leases and Pods without a cache.
	Client    client.Client
	Reader    client.Reader
	Dynamic   dynamic.Interface
	Watches   *Watches
	Namespace string
	// Self is this replica's ID, never taken for gone.
	Self string
	// Interval is the time between passes.
	Interval time.Duration
	// Policies prunes templates, constraints and the Config (Gatekeeper's
	// --operation=status); Mutators prunes the mutators
	// (--operation=mutation-status).
	Policies, Mutators bool
	Log                logr.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NeedLeaderElection is true: one pruner is enough.
func (p *Pruner) NeedLeaderElection() bool { return true }

// Start prunes every Interval until ctx ends.
func (p *Pruner) Start(ctx context.Context) error {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if _, err := p.Prune(ctx); err != nil && ctx.Err() == nil {
			if errors.Is(err, errNoHeartbeat) {
				p.Log.V(1).Info("Not pruning status entries", "reason", err.Error())
				return
			}
			p.Log.Error(err, "Pruning the status entries of replicas that are gone")
		}
	}, p.Interval)
	return nil
}

// liveness tells which replica IDs are alive in one pass.
type liveness struct {
	p      *Pruner
	now    time.Time
	leases map[string]*coordinationv1.Lease
	memo   map[string]bool
}

func (l *liveness) alive(ctx context.Context, id string) bool {
	if id == "" {
		return false
	}
	if id == l.p.Self {
		return true
	}
	if v, ok := l.memo[id]; ok {
		return v
	}
	v := l.check(ctx, id)
	l.memo[id] = v
	return v
}

func (l *liveness) check(ctx context.Context, id string) bool {
	lease, ok := l.leases[id]
	if !ok {
		// No heartbeat: alive while a Pod of that name exists.
		return l.podExists(ctx, id, "")
	}
	for _, ref := range lease.OwnerReferences {
		if ref.APIVersion == "v1" && ref.Kind == "Pod" {
			return l.podExists(ctx, ref.Name, ref.UID)
		}
	}
	if lease.Spec.RenewTime == nil || lease.Spec.LeaseDurationSeconds == nil {
		return false
	}
	return l.now.Before(lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second))
}

// podExists reports whether the Pod name (of uid, if given) exists; an
// error other than NotFound counts as alive.
func (l *liveness) podExists(ctx context.Context, name string, uid types.UID) bool {
	pod := &metav1.PartialObjectMetadata{}
	pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	err := l.p.Reader.Get(ctx, client.ObjectKey{Namespace: l.p.Namespace, Name: name}, pod)
	switch {
	case apierrors.IsNotFound(err):
		return false
	case err != nil:
		return true
	}
	return uid == "" || pod.UID == uid
}

// PruneReport says what one pass removed.
type PruneReport struct {
	// Removed maps "kind name" to the IDs removed from its byPod.
	Removed map[string][]string
	// Leases are the heartbeat Leases deleted, of replicas gone.
	Leases []string
}

// Prune runs one pass.
func (p *Pruner) Prune(ctx context.Context) (PruneReport, error) {
	rep := PruneReport{Removed: map[string][]string{}}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	leases := &coordinationv1.LeaseList{}
	if err := p.Reader.List(ctx, leases, client.InNamespace(p.Namespace), client.HasLabels{HeartbeatLabel}); err != nil {
		return rep, fmt.Errorf("listing heartbeat Leases: %w", err)
	}
	live := &liveness{p: p, now: now(), leases: map[string]*coordinationv1.Lease{}, memo: map[string]bool{}}
	for i := range leases.Items {
		if h := leases.Items[i].Spec.HolderIdentity; h != nil {
			live.leases[*h] = &leases.Items[i]
		}
	}
	if _, ok := live.leases[p.Self]; !ok {
		return rep, errNoHeartbeat
	}
	var errs []error
	var prune pruneFunc = func(what string, ids []string, res dynamic.ResourceInterface, name string, uid types.UID, constraint bool) {
		var gone []string
		for _, id := range ids {
			if !live.alive(ctx, id) {
				gone = append(gone, id)
			}
		}
		if len(gone) == 0 {
			return
		}
		w := resourceWriter(res, what, name, uid)
		wrote, err := writeObjectStatus(ctx, nil, w, func(obj *unstructured.Unstructured, cur map[string]any) (map[string]any, error) {
			status := copyStatus(cur)
			removeByPod(status, gone)
			if constraint {
				if err := setConstraintReady(status, obj.GetGeneration()); err != nil {
					return nil, err
				}
			}
			return status, nil
		})
		if err != nil {
			errs = append(errs, err)
			return
		}
		if wrote {
			rep.Removed[what+" "+name] = gone
			p.Log.Info("Removed the status entries of replicas that are gone", "kind", what, "name", name, "replicas", gone)
		}
	}

	if p.Mutators {
		errs = append(errs, p.pruneMutators(ctx, prune)...)
	}
	if !p.Policies {
		errs = append(errs, p.deleteStale(ctx, live, &rep)...)
		slices.Sort(rep.Leases)
		return rep, errors.Join(errs...)
	}
	templates := &templatesv1.ConstraintTemplateList{}
	if err := p.Client.List(ctx, templates); err != nil {
		errs = append(errs, fmt.Errorf("listing ConstraintTemplates: %w", err))
	}
	ctRes := p.Dynamic.Resource(templatesv1.SchemeGroupVersion.WithResource("constrainttemplates"))
	for i := range templates.Items {
		ct := &templates.Items[i]
		ids := make([]string, 0, len(ct.Status.ByPod))
		for _, e := range ct.Status.ByPod {
			ids = append(ids, e.ID)
		}
		prune("ConstraintTemplate", ids, ctRes, ct.Name, ct.UID, false)
	}
	if p.Watches != nil {
		for _, kind := range p.Watches.Kinds() {
			res := p.Dynamic.Resource(ConstraintGVR(kind))
			for _, name := range p.Watches.Names(kind) {
				u, found, err := p.Watches.Get(kind, name)
				if err != nil || !found {
					continue
				}
				prune(kind, byPodIDs(u), res, name, u.GetUID(), true)
			}
		}
	}
	cfg := &configv1alpha1.Config{}
	err := p.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: configv1alpha1.Name}, cfg)
	switch {
	case err == nil:
		ids := make([]string, 0, len(cfg.Status.ByPod))
		for _, e := range cfg.Status.ByPod {
			ids = append(ids, e.ID)
		}
		res := p.Dynamic.Resource(configv1alpha1.GroupVersion.WithResource("configs")).Namespace(p.Namespace)
		prune("Config", ids, res, cfg.Name, cfg.UID, false)
	case !apierrors.IsNotFound(err):
		errs = append(errs, fmt.Errorf("getting the Config: %w", err))
	}

	errs = append(errs, p.deleteStale(ctx, live, &rep)...)
	slices.Sort(rep.Leases)
	return rep, errors.Join(errs...)
}

// deleteStale deletes the heartbeat Leases of replicas gone.
func (p *Pruner) deleteStale(ctx context.Context, live *liveness, rep *PruneReport) []error {
	var errs []error
	for id, lease := range live.leases {
		if live.alive(ctx, id) {
			continue
		}
		uid := lease.UID
		if err := p.Client.Delete(ctx, lease, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("deleting the stale heartbeat Lease %s: %w", lease.Name, err))
			continue
		}
		rep.Leases = append(rep.Leases, lease.Name)
	}
	return errs
}

// pruneFunc prunes the entries of replicas gone from one object's status.
type pruneFunc func(what string, ids []string, res dynamic.ResourceInterface, name string, uid types.UID, constraint bool)

// pruneMutators prunes the status of every mutator.
func (p *Pruner) pruneMutators(ctx context.Context, prune pruneFunc) []error {
	var errs []error
	for _, kind := range mutation.Kinds {
		list := &unstructured.UnstructuredList{}
		gvk := MutatorGVK(kind)
		gvk.Kind += "List"
		list.SetGroupVersionKind(gvk)
		if err := p.Reader.List(ctx, list); err != nil {
			errs = append(errs, fmt.Errorf("listing %s: %w", kind, err))
			continue
		}
		res := p.Dynamic.Resource(MutatorGVR(kind))
		for i := range list.Items {
			u := &list.Items[i]
			prune(kind, byPodIDs(u), res, u.GetName(), u.GetUID(), false)
		}
	}
	return errs
}

// removeByPod removes the byPod entries of ids.
func removeByPod(status map[string]any, ids []string) {
	old, _ := status["byPod"].([]any)
	out := make([]any, 0, len(old))
	for _, e := range old {
		if m, ok := e.(map[string]any); ok {
			if id, _ := m["id"].(string); slices.Contains(ids, id) {
				continue
			}
		}
		out = append(out, e)
	}
	status["byPod"] = out
}

// byPodIDs lists the ids of u's status.byPod.
func byPodIDs(u *unstructured.Unstructured) []string {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
	out := make([]string, 0, len(list))
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			if id, ok := m["id"].(string); ok {
				out = append(out, id)
			}
		}
	}
	return out
}
