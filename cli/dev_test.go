package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/dev"
)

// TestDev runs `portcullis dev` three times on one data dir, as real
// processes with real signals:
//
//  1. two start at once: one refuses, naming the other's PID. The other
//     becomes ready; what it prints works; kube-controller-manager runs
//     (Deployments get Pods, namespaces are deleted); exec is refused by the
//     sample deny-exec constraint; then it is killed with SIGKILL.
//  2. the next start stops what the killed run left, in one line, removes
//     its webhook configuration, and has lost nothing: templates,
//     constraints, audit status, synced data. A user constraint refusing
//     every namespace is applied; SIGTERM stops everything.
//  3. on the same data dir made to look like an older version's, it starts
//     despite that constraint, with CONNECT off by a manager flag, and
//     --samples applies the samples again.
func TestDev(t *testing.T) {
	h := newDevHarness(t)
	dir := t.TempDir()
	td := func(name string) string { return filepath.Join(h.root, "cli", "testdata", "dev", name) }

	// 1. Two at once on one data dir.
	a := h.start(t, "first", dir, "--", "--audit-interval=5")
	b := h.start(t, "second", dir, "--", "--audit-interval=5")
	first, loser := twoAtOnce(t, a, b)
	if code := loser.waitExit(devStopBound); code != 1 {
		t.Errorf("%s: exit %d, want 1", loser.name, code)
	}
	if want := "already running with data dir " + dir; !strings.Contains(loser.stderr.String(), want) ||
		!strings.Contains(loser.stderr.String(), "(PID "+strconv.Itoa(first.cmd.Process.Pid)+",") {
		t.Errorf("%s: want a refusal naming PID %d (%q), got:\n%s", loser.name, first.cmd.Process.Pid, want, loser.stderr.String())
	}
	first.waitReady(devReadyBound)
	checkTryThis(t, first)
	stop := h.start(t, "--stop while running", dir, "--stop")
	if code := stop.waitExit(devStopBound); code != 1 || !strings.Contains(stop.stderr.String(), "already running with data dir") {
		t.Errorf("portcullis dev --stop while one runs: want refused (exit 1), got exit %d:\n%s", code, stop.stderr.String())
	}

	// kube-controller-manager: a Deployment gets its ReplicaSet and Pods
	// (Pending: no kubelet), and a Pod policy's denial shows in the
	// ReplicaSet's events.
	mustKubectl(t, dir, "kubectl apply -f "+td("payments.yaml")+" -f "+td("shop-dev.yaml"))
	pod := eventually(t, dir, "kubectl get pods -n payments-eu -l app=checkout -o jsonpath='{.items[0].metadata.name} {.items[0].status.phase}'",
		"a Pending pod of Deployment checkout", 90*time.Second, func(out string, err error) bool {
			return err == nil && strings.HasSuffix(out, " Pending")
		})
	podName := strings.Fields(pod)[0]
	eventually(t, dir, "kubectl get events -n payments-eu --field-selector involvedObject.kind=ReplicaSet,reason=FailedCreate -o jsonpath='{.items[*].message}'",
		"ReplicaSet events with the refusal of ledger's pods by [prop-pods-need-networkpolicy]", 90*time.Second, func(out string, err error) bool {
			return err == nil && strings.Contains(out, "[prop-pods-need-networkpolicy] Pod") && strings.Contains(out, "is protected (app=prop)")
		})

	// kubectl exec reaches admission without a kubelet: refused in a
	// protected namespace, and past admission elsewhere.
	out, err := kubectl(t, dir, "kubectl exec -n payments-eu "+podName+" -- date")
	if err == nil || !strings.Contains(out, `admission webhook "validation.gatekeeper.sh" denied the request: [no-exec-in-production] kubectl exec into Pod "payments-eu/`+podName+`"`) {
		t.Errorf("kubectl exec in payments-eu: want refused by [no-exec-in-production], got %v:\n%s", err, out)
	}
	other := eventually(t, dir, "kubectl get pods -n shop-dev -l app=checkout -o jsonpath='{.items[0].metadata.name}'",
		"a pod of Deployment checkout in shop-dev", 90*time.Second, func(out string, err error) bool { return err == nil && out != "" })
	if out, err := kubectl(t, dir, "kubectl exec -n shop-dev "+other+" -- date"); err == nil || !strings.Contains(out, "does not have a host assigned") {
		t.Errorf("kubectl exec in shop-dev: want admitted, then failing for want of a node, got %v:\n%s", err, out)
	}

	// Namespaces are deleted, with what they hold.
	if out, err := kubectl(t, dir, "kubectl delete namespace shop-dev --timeout=90s"); err != nil || !strings.Contains(out, `namespace "shop-dev" deleted`) {
		t.Fatalf("kubectl delete namespace shop-dev: %v\n%s", err, out)
	}
	mustKubectl(t, dir, "kubectl create namespace shop-dev --dry-run=client -o yaml | kubectl label -f - --local owner=shop.team test=true -o yaml | kubectl apply -f -")
	if out := mustKubectl(t, dir, "kubectl get deployments -n shop-dev -o name"); strings.TrimSpace(out) != "" {
		t.Errorf("the recreated namespace shop-dev still holds %s", out)
	}

	// Synced data, and the audit's status.
	mustKubectl(t, dir, "kubectl apply -f "+td("sync.yaml"))
	eventually(t, dir, "kubectl create --dry-run=server -f "+td("prop-pod.yaml"), "prop-0 admitted once its NetworkPolicy is synced",
		90*time.Second, func(_ string, err error) bool { return err == nil })
	eventually(t, dir, "kubectl get pcrequiredlabels namespace-must-have-test -o jsonpath='{.status.totalViolations}'",
		"an audit result in the status", 3*time.Minute, func(out string, err error) bool { return err == nil && out != "" && out != "0" })
	mustKubectl(t, dir, "kubectl delete pcallowedregistries no-docker-hub")
	templates := sortedLines(mustKubectl(t, dir, "kubectl get constrainttemplates -o name"))
	constraints := sortedLines(mustKubectl(t, dir, "kubectl get constraints -o name"))

	children := devChildren(dir)
	if len(children) < 3 {
		t.Fatalf("want etcd, kube-apiserver and kube-controller-manager running with %s, found PIDs %v", dir, children)
	}
	if code := first.signalAndWait(syscall.SIGKILL, devStopBound); code != -1 {
		t.Logf("first: killed (exit %d)", code)
	}

	// 2. The next start recovers.
	second := h.start(t, "after SIGKILL", dir, "--", "--audit-interval=5")
	second.waitReady(devReadyBound)
	stderr := second.stderr.String()
	for _, pid := range children {
		if !strings.Contains(stderr, "(PID "+strconv.Itoa(pid)+")") || devAlive(pid) {
			t.Errorf("PID %d of the killed run: want stopped and said so on the terminal (alive: %t)", pid, devAlive(pid))
		}
	}
	if want := "left running by a previous portcullis dev (PID " + strconv.Itoa(first.cmd.Process.Pid) + ","; !strings.Contains(stderr, want) ||
		strings.Count(stderr, "left running by") != 1 {
		t.Errorf("want one line saying what the killed run left (%q)", want)
	}
	if !strings.Contains(stderr, "removed ValidatingWebhookConfiguration portcullis-validating-webhook-configuration and MutatingWebhookConfiguration portcullis-mutating-webhook-configuration, left by a run that did not stop cleanly") {
		t.Error("the killed run's webhook configuration: want removed and said so")
	}
	if got := sortedLines(mustKubectl(t, dir, "kubectl get constrainttemplates -o name")); !slices.Equal(got, templates) {
		t.Errorf("templates after SIGKILL and restart: %v, want %v", got, templates)
	}
	if got := sortedLines(mustKubectl(t, dir, "kubectl get constraints -o name")); !slices.Equal(got, constraints) {
		t.Errorf("constraints after SIGKILL and restart (the deleted sample must stay deleted): %v, want %v", got, constraints)
	}
	if out := mustKubectl(t, dir, "kubectl get pcrequiredlabels namespace-must-have-test -o jsonpath='{.status.totalViolations}'"); out == "" || out == "0" {
		t.Errorf("the audit's status after restart: totalViolations %q", out)
	}
	// Ready means synced: no retry here.
	if out, err := kubectl(t, dir, "kubectl create --dry-run=server -f "+td("prop-pod.yaml")); err != nil {
		t.Errorf("prop-0 right after ready: want admitted (its NetworkPolicy synced again), got %v:\n%s", err, out)
	}

	// A user's policy that refuses every namespace.
	mustKubectl(t, dir, "kubectl apply -f "+td("deny-namespaces.yaml"))
	mustKubectl(t, dir, "kubectl wait --for=condition=Ready constrainttemplate/denyeverything --timeout=90s")
	eventually(t, dir, "kubectl apply -f "+td("deny-namespaces-constraint.yaml"), "the constraint applied", 90*time.Second,
		func(_ string, err error) bool { return err == nil })
	eventually(t, dir, "kubectl create namespace refused-by-user", "[deny-every-namespace] no namespace today", 90*time.Second,
		func(out string, err error) bool {
			return err != nil && strings.Contains(out, "[deny-every-namespace] no namespace today")
		})
	if code := second.signalAndWait(syscall.SIGTERM, devStopBound); code != 0 {
		t.Errorf("after SIGTERM: exit %d, want 0", code)
	}
	assertNothingLeft(t, dir, "after SIGTERM")

	// 3. A data dir as an older version left it, and that policy: ready.
	if err := os.Remove(filepath.Join(dir, "portcullis-dev.json")); err != nil {
		t.Fatal(err)
	}
	third := h.start(t, "older data dir", dir, "--samples", "--", "--enable-connect-operations=false")
	third.waitReady(devReadyBound)
	stderr = third.stderr.String()
	if !strings.Contains(stderr, "was made by an older portcullis dev (format 1") {
		t.Error("want a line saying the data dir was made by an older version and is upgraded")
	}
	if strings.Contains(stderr, "left running by") || strings.Contains(stderr, "removed ValidatingWebhookConfiguration") {
		t.Error("SIGTERM left processes or a webhook configuration for the next run to clean up")
	}
	if want := dev.ReadyLine + "; the webhook judges CREATE, UPDATE and DELETE\n"; !strings.Contains(third.stdout.String(), want) {
		t.Errorf("stdout lacks %q", want)
	}
	if out, err := kubectl(t, dir, "kubectl create namespace refused-by-user"); err == nil || !strings.Contains(out, "[deny-every-namespace] no namespace today") {
		t.Errorf("the user's constraint after restart: want enforced, got %v:\n%s", err, out)
	}
	// --samples applies them again, the one deleted included.
	if !strings.Contains(stderr, "portcullis dev: applying") {
		t.Error("--samples: no line saying the samples are applied")
	}
	if out, err := kubectl(t, dir, "kubectl get pcallowedregistries no-docker-hub -o name"); err != nil || !strings.Contains(out, "no-docker-hub") {
		t.Errorf("--samples: the sample constraint deleted is not back: %v\n%s", err, out)
	}
	if out, err := kubectl(t, dir, "kubectl exec -n payments-eu "+podName+" -- date"); err == nil || !strings.Contains(out, "does not have a host assigned") {
		t.Errorf("kubectl exec with --enable-connect-operations=false: want not judged, got %v:\n%s", err, out)
	}
	if code := third.signalAndWait(syscall.SIGINT, devStopBound); code != 0 {
		t.Errorf("after SIGINT: exit %d, want 0", code)
	}
	assertNothingLeft(t, dir, "after SIGINT")
}

// twoAtOnce waits until one of two runs on one data dir exits, and returns
// the other, then the one that exited.
func twoAtOnce(t *testing.T, a, b *devProc) (winner, loser *devProc) {
	t.Helper()
	select {
	case <-a.exited:
		return b, a
	case <-b.exited:
		return a, b
	case <-time.After(devStopBound):
		t.Fatalf("two portcullis dev on one data dir: neither refused within %s", devStopBound)
	}
	return nil, nil
}

// checkTryThis runs the commands of the "try this" block as printed, and
// checks the ready line.
func checkTryThis(t *testing.T, p *devProc) {
	t.Helper()
	out := p.stdout.String()
	if want := dev.ReadyLine + "; the webhook judges CREATE, UPDATE, DELETE and CONNECT\n"; strings.Count(out, want) != 1 {
		t.Errorf("stdout has %q %d times, want once", want, strings.Count(out, want))
	}
	var refused, admitted, get string
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "export KUBECONFIG="):
			if got, want := strings.TrimPrefix(line, "export KUBECONFIG="), filepath.Join(p.dataDir, "kubeconfig"); got != want {
				t.Errorf("printed KUBECONFIG %s, want %s", got, want)
			}
		case strings.HasPrefix(line, "kubectl create namespace") && strings.Contains(line, "kubectl apply"):
			admitted = line
		case strings.HasPrefix(line, "kubectl create namespace"):
			refused = line
		case line == "kubectl get constraints":
			get = line
		}
	}
	if refused == "" || admitted == "" || get == "" {
		t.Fatalf("the try-this block lacks a command (refused %q, admitted %q, get %q):\n%s", refused, admitted, get, out)
	}
	if got, err := kubectl(t, p.dataDir, refused); err == nil || !strings.Contains(got, "denied") {
		t.Errorf("%s: want refused by the webhook, got err %v:\n%s", refused, err, got)
	}
	if got, err := kubectl(t, p.dataDir, admitted); err != nil || !strings.Contains(got, "created") {
		t.Errorf("%s: want created, got err %v:\n%s", admitted, err, got)
	}
	if got, err := kubectl(t, p.dataDir, get); err != nil || !strings.Contains(got, "namespace-must-have-test") || !strings.Contains(got, "namespace-owner-and-test") {
		t.Errorf("%s: want the sample constraints, got err %v:\n%s", get, err, got)
	}
}
