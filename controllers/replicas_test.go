package controllers

import (
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestHeartbeatLeaseName(t *testing.T) {
	for id, want := range map[string]string{
		"gatekeeper-audit-7c9f-x2": HeartbeatLeasePrefix + "gatekeeper-audit-7c9f-x2",
		"My_Laptop.local":          HeartbeatLeasePrefix + "my-laptop.local",
	} {
		if got := HeartbeatLeaseName(id); got != want {
			t.Errorf("HeartbeatLeaseName(%q) = %q, want %q", id, got, want)
		}
	}
	if n := HeartbeatLeaseName(strings.Repeat("a", 300)); len(n) != 253 {
		t.Errorf("a long ID gives a name of %d characters, want 253", len(n))
	}
}

// TestLiveness: a replica is alive while its Lease's Pod exists (in a
// cluster) or while its Lease is fresh (outside one); an ID without a
// Lease is alive while a Pod of that name exists; this replica always is.
func TestLiveness(t *testing.T) {
	const ns = "gatekeeper-system"
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gk-pod", Namespace: ns, UID: "pod-uid"}}
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(pod).Build()
	lease := func(id string, renewed time.Duration, owner *metav1.OwnerReference) *coordinationv1.Lease {
		secs := int32(40)
		renew := metav1.NewMicroTime(now.Add(-renewed))
		l := &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: &id, LeaseDurationSeconds: &secs, RenewTime: &renew}}
		if owner != nil {
			l.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		return l
	}
	podRef := func(name, uid string) *metav1.OwnerReference {
		return &metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: name, UID: types.UID(uid)}
	}
	live := &liveness{
		p:   &Pruner{Reader: reader, Namespace: ns, Self: "me"},
		now: now,
		leases: map[string]*coordinationv1.Lease{
			"fresh":        lease("fresh", 10*time.Second, nil),
			"stale":        lease("stale", time.Minute, nil),
			"gk-pod":       lease("gk-pod", time.Hour, podRef("gk-pod", "pod-uid")),
			"pod-replaced": lease("pod-replaced", 0, podRef("gk-pod", "old-uid")),
			"pod-gone":     lease("pod-gone", 0, podRef("pod-gone", "x")),
		},
		memo: map[string]bool{},
	}
	for id, want := range map[string]bool{
		"me":           true,  // no Lease, no Pod, but this replica
		"fresh":        true,  // renewed within its duration
		"stale":        false, // not renewed for longer
		"gk-pod":       true,  // its Pod exists, however stale the Lease
		"pod-replaced": false, // a Pod of that name, another UID
		"pod-gone":     false, // its Pod is gone, however fresh the Lease
		"no-lease":     false, // neither Lease nor Pod
		"":             false,
	} {
		if got := live.alive(t.Context(), id); got != want {
			t.Errorf("alive(%q) = %t, want %t", id, got, want)
		}
	}
	// An ID without a Lease whose Pod exists: a Gatekeeper pod.
	delete(live.leases, "gk-pod")
	delete(live.memo, "gk-pod")
	if !live.alive(t.Context(), "gk-pod") {
		t.Error("a Pod without a heartbeat Lease is taken for gone")
	}
}

func TestRemoveByPod(t *testing.T) {
	status := map[string]any{"byPod": []any{
		map[string]any{"id": "a"}, map[string]any{"id": "gone"}, "malformed", map[string]any{"id": "b"},
	}}
	removeByPod(status, []string{"gone"})
	if got := len(status["byPod"].([]any)); got != 3 {
		t.Errorf("byPod = %v, want a, malformed and b", status["byPod"])
	}
}
