package manager_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	"github.com/portcullis-dev/portcullis/controllers"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// gatekeeperConstraintEnforced is the check of Gatekeeper's end-to-end
// helper constraint_enforced (test/bats/helpers.bash), written again in Go
// with the addition of enforced: the constraint's status.byPod has,
// for each of webhookPods (the pods labeled gatekeeper.sh/operation=webhook
// there), exactly one entry whose operations contain webhook, that is
// enforced and at the constraint's generation; the number of such entries
// is the number of webhook pods, so a replica that does not run the
// webhook must not list it, and a webhook replica gone must not linger.
func gatekeeperConstraintEnforced(ctx context.Context, kind, name string, webhookPods []string) error {
	if len(webhookPods) == 0 {
		return fmt.Errorf("no webhook pods")
	}
	u, err := testenv.GetConstraint(ctx, env.Client, kind, name)
	if err != nil {
		return err
	}
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
	var ready []string
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		ops, _, _ := unstructured.NestedStringSlice(m, "operations")
		gen, _ := m["observedGeneration"].(int64)
		if slices.Contains(ops, "webhook") && gen == u.GetGeneration() && m["enforced"] == true {
			id, _ := m["id"].(string)
			ready = append(ready, id)
		}
	}
	slices.Sort(ready)
	want := slices.Sorted(slices.Values(webhookPods))
	if !slices.Equal(ready, want) {
		return fmt.Errorf("enforcing webhook entries %q, want one for each webhook pod %q: byPod %v", ready, want, list)
	}
	return nil
}

var pruneRuns atomic.Int32

// TestStatusOfGoneReplicasRemoved runs two replicas, as Gatekeeper's
// audit pod (every operation, status among them) and a webhook pod, with
// short heartbeats. The status.byPod entries of replicas that are gone are
// removed: one without a heartbeat Lease or Pod, one whose Lease went
// stale, one whose Lease's Pod was deleted, and the webhook replica once
// it stops; an entry whose Pod exists stays. Gatekeeper's constraint
// enforced check holds before and after, and the Config gets Gatekeeper's
// status from both replicas, then from the one left.
func TestStatusOfGoneReplicasRemoved(t *testing.T) {
	ctx := t.Context()
	ns := manager.DefaultNamespace
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	// The client's scheme lacks Config: unstructured.
	cfg := &unstructured.Unstructured{}
	cfg.SetGroupVersionKind(configv1alpha1.GroupVersion.WithKind("Config"))
	cfg.SetName(configv1alpha1.Name)
	cfg.SetNamespace(ns)
	if err := env.Client.Create(ctx, cfg); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cfg) })
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cfg), cfg); err != nil {
		t.Fatal(err)
	}

	const heartbeat = 2 * time.Second
	auditPod := startManager(t, startOpts{podID: "prune-audit", options: func(o *manager.Options) {
		o.HeartbeatDuration = heartbeat
	}})
	webhookPod := startManager(t, startOpts{podID: "prune-webhook", options: func(o *manager.Options) {
		o.HeartbeatDuration = heartbeat
		o.Operations = []manager.Operation{manager.OperationWebhook}
	}})
	kind := fmt.Sprintf("K8sPruned%d", pruneRuns.Add(1))
	apply(t, requiredLabels("v1", kind))
	apply(t, constraint(kind, "pruned", "deny", "team"))
	both := []string{auditPod.podID, webhookPod.podID}
	eventually(t, "Gatekeeper's check with both replicas", func(ctx context.Context) (bool, error) {
		err := gatekeeperConstraintEnforced(ctx, kind, "pruned", both)
		return err == nil, err
	})

	// A Pod that exists (a Gatekeeper pod, say), and one deleted.
	pod := func(name string) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "gatekeeper"}}},
		}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
		return p
	}
	livePod, deletedPod := pod("prune-live-pod"), pod("prune-deleted-pod")
	if err := env.Client.Delete(ctx, deletedPod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	lease := func(id string, renewed time.Time, owner *corev1.Pod) {
		secs := int32(1)
		renew := metav1.NewMicroTime(renewed)
		l := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: controllers.HeartbeatLeaseName(id), Namespace: ns, Labels: map[string]string{controllers.HeartbeatLabel: "yes"}},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &secs, RenewTime: &renew},
		}
		if owner != nil {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: owner.Name, UID: owner.UID}}
			secs = 3600
		}
		if err := env.Client.Create(ctx, l); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), l) })
	}
	lease("prune-stale", time.Now().Add(-time.Hour), nil)
	lease(deletedPod.Name, time.Now(), deletedPod)
	fakes := []string{"prune-no-lease", "prune-stale", deletedPod.Name, livePod.Name}
	u, err := testenv.GetConstraint(ctx, env.Client, kind, "pruned")
	if err != nil {
		t.Fatal(err)
	}
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
	for _, id := range fakes {
		list = append(list, map[string]any{"id": id, "operations": []any{"webhook"}, "enforced": true, "observedGeneration": u.GetGeneration()})
	}
	if err := unstructured.SetNestedSlice(u.Object, list, "status", "byPod"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Status().Update(ctx, u); err != nil {
		t.Fatal(err)
	}

	ids := func(u *unstructured.Unstructured, err error) (string, error) {
		if err != nil {
			return "", err
		}
		return byPodIDs(u), nil
	}
	eventually(t, "the entries of the replicas gone to be removed", func(ctx context.Context) (bool, error) {
		got, err := ids(testenv.GetConstraint(ctx, env.Client, kind, "pruned"))
		want := strings.Join([]string{auditPod.podID, webhookPod.podID, livePod.Name}, ",")
		want = strings.Join(slices.Sorted(strings.SplitSeq(want, ",")), ",")
		return got == want, fmt.Errorf("byPod ids %s, want %s (err %v)", got, want, err)
	})
	stale := &coordinationv1.Lease{}
	eventually(t, "the stale Lease to be deleted", func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.HeartbeatLeaseName("prune-stale")}, stale)
		return apierrors.IsNotFound(err), err
	})

	t.Run("the Config gets Gatekeeper's status", func(t *testing.T) {
		eventually(t, "both replicas' Config entries", func(ctx context.Context) (bool, error) {
			c := &unstructured.Unstructured{}
			c.SetGroupVersionKind(configv1alpha1.GroupVersion.WithKind("Config"))
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cfg), c); err != nil {
				return false, err
			}
			for _, r := range []struct{ id, ops string }{
				{auditPod.podID, "[audit generate mutation-controller mutation-status mutation-webhook status webhook]"},
				{webhookPod.podID, "[webhook]"},
			} {
				e := testenv.ByPod(c, r.id)
				if e == nil || e["configUID"] != string(cfg.GetUID()) || fmt.Sprint(e["operations"]) != r.ops || e["observedGeneration"] != c.GetGeneration() || e["errors"] != nil {
					return false, fmt.Errorf("entry of %s: %v, want configUID, operations %s, observedGeneration %d", r.id, e, r.ops, c.GetGeneration())
				}
			}
			return true, nil
		})
	})

	// The webhook replica stops: its Lease goes with it, then its entries.
	webhookPod.stop()
	eventually(t, "Gatekeeper's check with the one replica left", func(ctx context.Context) (bool, error) {
		// livePod's fake entry runs the webhook too.
		err := gatekeeperConstraintEnforced(ctx, kind, "pruned", []string{auditPod.podID, livePod.Name})
		return err == nil, err
	})
	eventually(t, "the template and the Config to lose the stopped replica's entries", func(ctx context.Context) (bool, error) {
		ct, err := getTemplate(ctx, strings.ToLower(kind))
		if err != nil {
			return false, err
		}
		c := &unstructured.Unstructured{}
		c.SetGroupVersionKind(configv1alpha1.GroupVersion.WithKind("Config"))
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cfg), c); err != nil {
			return false, err
		}
		return byPodIDs(ct) == auditPod.podID && byPodIDs(c) == auditPod.podID, fmt.Errorf("template byPod %s, Config byPod %s", byPodIDs(ct), byPodIDs(c))
	})
}
