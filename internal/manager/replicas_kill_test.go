package manager_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// controller-runtime's leader election defaults, which Options do not
// change (the test checks the Lease's leaseDurationSeconds against the
// first).
const (
	leaseDuration = 15 * time.Second
	retryPeriod   = 2 * time.Second
)

// killedLeaseTime bounds the handover from a leader that dies without
// releasing the Lease. A candidate retries every RetryPeriod jittered by
// client-go's leaderelection.JitterFactor (1.2), i.e. every 2 to 4.4 s, and
// counts the lease from the moment it observed the holder's last renewal,
// not from the renewTime in the Lease. It may therefore observe the last
// renewal up to one retry after it happened, and take the expired lease up
// to one retry after LeaseDuration has passed from then:
// 15 s + 2 × 4.4 s = 23.8 s after the last renewal, which came before the
// kill; leaseTime (LeaseDuration + RetryPeriod, 17 s) is not a bound for a
// killed leader, only for one that released the Lease. handoverSlack
// covers the API calls of a busy machine.
var killedLeaseTime = leaseDuration + 2*time.Duration(float64(retryPeriod)*(1+leaderelection.JitterFactor))

const handoverSlack = 2 * time.Second

// TestReplicasKilledLeaderHandsOverAudit runs the leader as a real
// `portcullis manager --leader-elect` subprocess and a second replica
// in-process, both auditing: only the subprocess audits while it leads,
// both load the policies (so both would serve admission), and once it is
// SIGKILLed, so that it cannot release the Lease, the other replica takes
// the Lease and the audit after the dead leader's lease expires
// (renewTime + leaseDurationSeconds) and within killedLeaseTime of the
// kill.
//
// As in TestReplicasAuditOnLeaderOnly, the replicas have different
// --constraint-violations-limit (3 and 2), so that the length of the
// constraint's status.violations says which one wrote the audit status.
func TestReplicasKilledLeaderHandsOverAudit(t *testing.T) {
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manager.DefaultNamespace}}
	if err := env.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	kind := fmt.Sprintf("K8sKilledLeader%d", killedLeaderRuns.Add(1))
	const limitA, limitB = 3, 2

	bin := buildPortcullis(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Environment.KubeConfig, 0o600); err != nil {
		t.Fatalf("writing kubeconfig: %v", err)
	}
	metricsA := freeAddr(t)
	a := startProcess(t, bin,
		"manager",
		"--kubeconfig", kubeconfig,
		"--pod-id", "killed-a",
		"--leader-elect",
		"--enable-webhook=false",
		"--metrics-bind-address", metricsA,
		"--health-probe-bind-address", freeAddr(t),
		"--audit-interval", "1s",
		"--audit-match-kind-only",
		"--constraint-violations-limit", strconv.Itoa(limitA),
		// Rewrite the status every run, so that auditTimestamp shows each
		// run even when the violations do not change.
		"--audit-status-refresh", "1ns",
	)
	// A is the only candidate: once its own metrics say it leads, the
	// Lease holder is A.
	eventually(t, "killed-a to lead (leader_election_master_status 1 on its /metrics)", func(ctx context.Context) (bool, error) {
		if err := a.exited(); err != nil {
			t.Fatal(err)
		}
		body, err := httpGet(ctx, "http://"+metricsA+"/metrics")
		if err != nil {
			return false, err
		}
		want := fmt.Sprintf("leader_election_master_status{name=%q} 1", manager.LeaderElectionID)
		return strings.Contains(body, want), fmt.Errorf("no %s in /metrics", want)
	})
	holderA := leaseHolder(t)
	if holderA == "" {
		t.Fatal("no Lease holder while killed-a leads")
	}

	b := startManager(t, startOpts{podID: "killed-b", options: func(o *manager.Options) {
		o.LeaderElect = true
		o.Audit.Interval = time.Second
		o.Audit.MatchKindOnly = true
		o.Audit.ViolationsLimit = limitB
	}})
	electedB := make(chan time.Time, 1)
	go func() {
		select {
		case <-b.Manager.Manager().Elected():
			electedB <- time.Now()
		case <-ctx.Done():
		}
	}()

	apply(t, requiredLabels("v1", kind))
	// Every Namespace lacks the label: default, kube-system, kube-public,
	// kube-node-lease and portcullis-system at least, more than either
	// limit.
	apply(t, fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: %s
metadata:
  name: killed-leader
spec:
  enforcementAction: dryrun
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["Namespace"]
  parameters:
    labels: ["killed-leader-test"]
`, kind))

	// Both load the template and the constraint: both serve admission.
	for _, id := range []string{"killed-a", b.podID} {
		eventually(t, id+" to enforce the constraint", func(ctx context.Context) (bool, error) {
			if err := a.exited(); err != nil {
				t.Fatal(err)
			}
			return constraintEnforced(ctx, kind, "killed-leader", id)
		})
	}
	eventually(t, "killed-b's engine to judge a Namespace", func(ctx context.Context) (bool, error) {
		msgs, err := review(ctx, b.Engine(), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: unlabelled\n")
		return len(msgs) == 1, fmt.Errorf("violations %v, error %v", msgs, err)
	})

	// Only A audits: over several runs, auditTimestamp advances and every
	// status is A's, while A keeps the Lease.
	last := onlyLeaderAudits(t, kind, "killed-leader", "killed-a", limitA, holderA, b, a.exited)

	// Kill A: it cannot release the Lease.
	killed := a.kill(t)

	// Until B leads: the Lease stays A's, unreleased (a release empties
	// holderIdentity), and nobody audits but A (whose last status may
	// still land). lastA is A's last record: a renewal in flight at the
	// kill may land after it, so it is tracked rather than read once.
	var lastA *coordinationv1.Lease
	var electedAt time.Time
	pollUntil(t, killedLeaseTime+handoverSlack, "killed-b to be elected", func() (bool, error) {
		lease := getLease(t)
		select {
		case electedAt = <-electedB:
			return true, nil
		default:
		}
		st := auditStatus(t, kind, "killed-leader")
		if st.violations != limitA && !elected(b) {
			t.Fatalf("audit status %+v written while killed-b does not lead", st)
		}
		h := ptr.Deref(lease.Spec.HolderIdentity, "")
		switch h {
		case holderA:
			lastA = lease
		case "":
			t.Fatalf("the Lease was released after killed-a was killed: %+v", lease.Spec)
		}
		return false, fmt.Errorf("Lease holder %q, renewTime %v", h, lease.Spec.RenewTime)
	})
	took := electedAt.Sub(killed)

	if lastA == nil {
		t.Fatal("never saw the Lease held by killed-a after the kill")
	}
	if d := ptr.Deref(lastA.Spec.LeaseDurationSeconds, 0); time.Duration(d)*time.Second != leaseDuration {
		t.Fatalf("killed-a's Lease has leaseDurationSeconds %d, the test assumes %s", d, leaseDuration)
	}
	if lastA.Spec.RenewTime == nil {
		t.Fatal("killed-a's Lease has no renewTime")
	}
	expiry := lastA.Spec.RenewTime.Add(leaseDuration)

	leaseB := getLease(t)
	holderB := ptr.Deref(leaseB.Spec.HolderIdentity, "")
	if holderB == "" || holderB == holderA {
		t.Fatalf("killed-b elected, but the Lease holder is %q (killed-a was %q)", holderB, holderA)
	}
	if leaseB.Spec.AcquireTime == nil {
		t.Fatal("killed-b's Lease has no acquireTime")
	}
	acquired := leaseB.Spec.AcquireTime.Time
	// Lease times are written with microseconds: allow one of truncation.
	if acquired.Before(expiry.Add(-time.Microsecond)) {
		t.Fatalf("killed-b acquired the Lease at %s, before killed-a's lease expired at %s (renewTime %s + %s): it got a released Lease",
			acquired.Format(time.RFC3339Nano), expiry.Format(time.RFC3339Nano), lastA.Spec.RenewTime.Format(time.RFC3339Nano), leaseDuration)
	}
	if got, want := ptr.Deref(leaseB.Spec.LeaseTransitions, 0), ptr.Deref(lastA.Spec.LeaseTransitions, 0)+1; got != want {
		t.Errorf("leaseTransitions = %d after the handover, want %d", got, want)
	}
	if took > killedLeaseTime+handoverSlack {
		t.Fatalf("killed-b was elected %s after the kill, more than %s + %s", took, killedLeaseTime, handoverSlack)
	}

	after := auditOf(t, kind, "killed-leader", limitB, last.timestamp)
	t.Logf("killed-a killed %s after its last renewal; killed-b (Lease holder %q) was elected %s after the kill, having acquired the Lease %s after killed-a's lease expired, and audited at %s (%s after the kill)",
		killed.Sub(lastA.Spec.RenewTime.Time).Round(time.Millisecond), holderB, took.Round(time.Millisecond),
		acquired.Sub(expiry).Round(time.Millisecond), after.timestamp, time.Since(killed).Round(time.Millisecond))
}

var killedLeaderRuns atomic.Int32

func getLease(t *testing.T) *coordinationv1.Lease {
	t.Helper()
	lease := &coordinationv1.Lease{}
	key := client.ObjectKey{Namespace: manager.DefaultNamespace, Name: manager.LeaderElectionID}
	if err := env.Client.Get(t.Context(), key, lease); err != nil {
		t.Fatalf("getting the Lease %s: %v", key, err)
	}
	return lease
}

// buildPortcullis builds the portcullis binary from the repository root.
func buildPortcullis(t *testing.T) string {
	t.Helper()
	begin := time.Now()
	bin := testenv.BuildPortcullis(t, t.TempDir())
	t.Logf("Built portcullis in %s", time.Since(begin).Round(100*time.Millisecond))
	return bin
}

// process is a subprocess that the test kills at the latest when it ends.
type process struct {
	cmd    *exec.Cmd
	output *testenv.Buffer
	done   chan struct{}
	err    error // cmd.Wait's, once done is closed
}

// startProcess runs bin with args; its output is logged if the test fails
// (and streamed to stderr with PORTCULLIS_TEST_LOG set).
func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, nil, bin, args...)
}

// startProcessEnv is startProcess with environment variables (NAME=value)
// added to the test's.
func startProcessEnv(t *testing.T, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{output: &testenv.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	var w io.Writer = p.output
	if os.Getenv("PORTCULLIS_TEST_LOG") != "" {
		w = io.MultiWriter(p.output, os.Stderr)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			out := p.output.String()
			if len(out) > 8000 {
				out = "...\n" + out[len(out)-8000:]
			}
			t.Logf("output of %s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
		}
	})
	return p
}

// exited returns an error if the process has exited.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v", p.cmd.Path, p.err)
	default:
		return nil
	}
}

// kill sends SIGKILL, waits until the process is gone and returns the
// time of the kill.
func (p *process) kill(t *testing.T) time.Time {
	t.Helper()
	if err := p.exited(); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("killing %s: %v", p.cmd.Path, err)
	}
	<-p.done
	return at
}
