package manager_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// leaseTime bounds a handover: controller-runtime's default LeaseDuration
// (15 s, which Options do not change) plus its RetryPeriod (2 s). The
// managers release the Lease when they stop (LeaderElectionReleaseOnCancel),
// so a clean stop hands over within about one RetryPeriod; a leader that
// dies without releasing is replaced once its lease expires, within
// killedLeaseTime (TestReplicasKilledLeaderHandsOverAudit).
const leaseTime = 15*time.Second + 2*time.Second

// TestReplicasAuditOnLeaderOnly runs two managers with leader election and
// the audit on, as two replicas of the audit Deployment would: both load
// the policies (so both would serve admission), only the Lease holder
// audits, and stopping it hands the audit to the other within leaseTime.
//
// Each replica gets a different --constraint-violations-limit (3 and 2), so
// the length of the constraint's status.violations says which one wrote the
// audit status last.
func TestReplicasAuditOnLeaderOnly(t *testing.T) {
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manager.DefaultNamespace}}
	if err := env.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	// A new kind each run (-count=N): the client's RESTMapper may still
	// map the previous run's kind, whose CRD is gone.
	kind := fmt.Sprintf("K8sAuditLeader%d", auditLeaderRuns.Add(1))
	auditing := func(limit int) func(*manager.Options) {
		return func(o *manager.Options) {
			o.LeaderElect = true
			o.Audit.Interval = time.Second
			o.Audit.MatchKindOnly = true
			o.Audit.ViolationsLimit = limit
		}
	}
	const limitA, limitB = 3, 2
	a := startManager(t, startOpts{podID: "audit-a", options: auditing(limitA)})
	// A leads: start B only once A holds the Lease.
	select {
	case <-a.Manager.Manager().Elected():
	case <-time.After(waitTimeout):
		t.Fatal("manager audit-a was never elected")
	}
	b := startManager(t, startOpts{podID: "audit-b", options: auditing(limitB)})

	apply(t, requiredLabels("v1", kind))
	// Every Namespace lacks the label: at least default, kube-system,
	// kube-public, kube-node-lease and portcullis-system violate, more
	// than either limit.
	apply(t, fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: %s
metadata:
  name: leader-only
spec:
  enforcementAction: dryrun
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["Namespace"]
  parameters:
    labels: ["audit-leader-test"]
`, kind))

	// Both load the template and the constraint: both serve admission.
	for _, r := range []*running{a, b} {
		eventually(t, r.podID+" to enforce the constraint", func(ctx context.Context) (bool, error) {
			return constraintEnforced(ctx, kind, "leader-only", r.podID)
		})
		eventually(t, r.podID+"'s engine to judge a Namespace", func(ctx context.Context) (bool, error) {
			msgs, err := review(ctx, r.Engine(), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: unlabelled\n")
			return len(msgs) == 1, fmt.Errorf("violations %v, error %v", msgs, err)
		})
	}

	holderA := leaseHolder(t)
	if holderA == "" {
		t.Fatal("no Lease holder while audit-a is elected")
	}
	if elected(b) {
		t.Fatal("audit-b is elected too")
	}

	// Only A audits: over several runs, auditTimestamp advances and every
	// status is A's (limitA violations), while A keeps the Lease.
	last := onlyLeaderAudits(t, kind, "leader-only", "audit-a", limitA, holderA, b, nil)

	// Stop the leader: B takes the Lease and the audit within leaseTime.
	stopped := time.Now()
	a.stop()
	var holderB string
	pollUntil(t, leaseTime, "audit-b to take the Lease", func() (bool, error) {
		holderB = leaseHolder(t)
		return holderB != "" && holderB != holderA && elected(b), fmt.Errorf("holder %q, audit-b elected: %v", holderB, elected(b))
	})
	took := time.Since(stopped)
	after := auditOf(t, kind, "leader-only", limitB, last.timestamp)
	t.Logf("audit-b (Lease holder %q) took over %s after audit-a stopped and audited at %s (%s after the stop)",
		holderB, took.Round(time.Millisecond), after.timestamp, time.Since(stopped).Round(time.Millisecond))
}

var auditLeaderRuns atomic.Int32

// onlyLeaderAudits watches the audit status of constraint kind/name over
// several runs (at least 4 s, and until auditTimestamp advances): every
// status must be the leader's (limit violations, where the other replica
// writes fewer), the Lease must stay holder's and the other replica must
// not be elected. alive, if set, fails when the leader has died. It
// returns the last status seen.
func onlyLeaderAudits(t *testing.T, kind, name, leader string, limit int, holder string, other *running, alive func() error) auditState {
	t.Helper()
	first := auditOf(t, kind, name, limit, "")
	last := first
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) || last.timestamp == first.timestamp {
		if alive != nil {
			if err := alive(); err != nil {
				t.Fatal(err)
			}
		}
		st := auditStatus(t, kind, name)
		if st.violations != limit {
			t.Fatalf("audit status with %d violations while %s leads: written by %s", st.violations, leader, other.podID)
		}
		if h := leaseHolder(t); h != holder {
			t.Fatalf("Lease holder changed from %q to %q while both run", holder, h)
		}
		if elected(other) {
			t.Fatalf("%s elected while %s leads", other.podID, leader)
		}
		last = st
		if time.Since(deadline) > waitTimeout {
			t.Fatalf("auditTimestamp stuck at %s", first.timestamp)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%s (Lease holder %q) audited from %s to %s; %s did not", leader, holder, first.timestamp, last.timestamp, other.podID)
	return last
}

type auditState struct {
	timestamp  string
	violations int
}

func auditStatus(t *testing.T, kind, name string) auditState {
	t.Helper()
	u, err := testenv.GetConstraint(t.Context(), env.Client, kind, name)
	if err != nil {
		t.Fatalf("getting %s %s: %v", kind, name, err)
	}
	ts, _, _ := unstructured.NestedString(u.Object, "status", "auditTimestamp")
	v, _, _ := unstructured.NestedSlice(u.Object, "status", "violations")
	return auditState{timestamp: ts, violations: len(v)}
}

// auditOf waits for an audit status with the given number of violations
// written after the RFC 3339 time since ("": any).
func auditOf(t *testing.T, kind, name string, violations int, since string) auditState {
	t.Helper()
	var st auditState
	eventually(t, fmt.Sprintf("an audit status with %d violations after %q", violations, since), func(ctx context.Context) (bool, error) {
		st = auditStatus(t, kind, name)
		return st.timestamp != "" && st.timestamp > since && st.violations == violations, fmt.Errorf("status %+v", st)
	})
	return st
}

// leaseHolder returns the holder of the manager's Lease, "" if none.
func leaseHolder(t *testing.T) string {
	t.Helper()
	lease := &coordinationv1.Lease{}
	err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: manager.DefaultNamespace, Name: manager.LeaderElectionID}, lease)
	if err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

func elected(r *running) bool {
	select {
	case <-r.Manager.Manager().Elected():
		return true
	default:
		return false
	}
}

// pollUntil is eventually with its own timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	testenv.Eventually(t, testenv.Poll{Timeout: timeout}, what, testenv.Holds(func(context.Context) (bool, error) { return cond() }))
}
