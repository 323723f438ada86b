package manager_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

var shutdownRuns atomic.Int32

// TestShutdownDelay runs `portcullis manager --operation=webhook,generate
// --shutdown-delay=4`: after SIGTERM it keeps serving admission (a bad
// ConfigMap is still refused through the API server, where a webhook gone
// would let it through under failurePolicy Ignore) for the delay, then
// exits cleanly; a second SIGTERM during the delay ends it at once, as in
// Gatekeeper.
func TestShutdownDelay(t *testing.T) {
	const delay = 4 * time.Second
	ctx := t.Context()
	bin := buildPortcullis(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Environment.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	const ns, appNS, vwcName = "portcullis-shutdown", "shutdown-app", "portcullis-shutdown-test"
	testenv.EnsureNamespaces(t, env.Client, ns, appNS)
	t.Cleanup(func() {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		vwc.Name = vwcName
		if err := env.Client.Delete(context.Background(), vwc); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting the webhook configuration: %v", err)
		}
	})
	args := []string{
		"manager", "--port=PORT", "--health-addr=:HEALTH", "--prometheus-port=METRICS", "--operation=webhook,generate",
		"--validating-webhook-configuration-name=" + vwcName, fmt.Sprintf("--shutdown-delay=%d", int(delay.Seconds())),
	}
	p := startChartPodIn(t, bin, kubeconfig, ns, "shutdown-0", args, true)
	waitChartPodReady(t, p)
	kind := fmt.Sprintf("K8sShutdown%d", shutdownRuns.Add(1))
	apply(t, requiredLabels("v1", kind))
	apply(t, fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: %s
metadata:
  name: shutdown-owner
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
    namespaces: [%s]
  parameters:
    labels: [owner]
`, kind, appNS))
	const want = "[shutdown-owner] missing required labels"
	waitRefused(t, appNS, want)

	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The manager serves until at least sent+delay: an answer that came
	// back before then must be a refusal. One that came back later (a
	// slow API server on a busy machine) proves nothing either way.
	end := sent.Add(delay)
	for time.Now().Before(end) {
		err := refusedConfigMap(ctx, appNS, want)
		if time.Now().After(end) {
			break
		}
		if err != nil {
			t.Fatalf("%s after SIGTERM, within --shutdown-delay: %v", time.Since(sent).Round(time.Millisecond), err)
		}
		if err := p.exited(); err != nil {
			t.Fatalf("%v %s after SIGTERM, within --shutdown-delay=%s", err, time.Since(sent), delay)
		}
		time.Sleep(300 * time.Millisecond)
	}
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatalf("still running %s after SIGTERM", waitTimeout)
	}
	if took := time.Since(sent); took < delay || p.err != nil {
		t.Errorf("exited %s after SIGTERM with %v, want a clean exit after --shutdown-delay=%s", took, p.err, delay)
	}
	if !p.output.Contains("Stopping after --shutdown-delay", `"delay":"4s"`) {
		t.Error("no log line says the manager waits for --shutdown-delay")
	}

	// A second SIGTERM: at once.
	q := startChartPodIn(t, bin, kubeconfig, ns, "shutdown-1", append(args[:len(args)-1], "--shutdown-delay=120"), false)
	waitChartPodReady(t, q)
	if err := q.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first SIGTERM to be seen", func(context.Context) (bool, error) {
		return q.output.Contains("Stopping after --shutdown-delay"), nil
	})
	sent = time.Now()
	if err := q.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-q.done:
		t.Logf("a second SIGTERM ended it in %s: %v", time.Since(sent).Round(time.Millisecond), q.err)
	case <-time.After(time.Minute):
		t.Fatal("a second SIGTERM did not end the manager within --shutdown-delay=120")
	}
}
