package manager_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/loopback"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// gatekeeperNamespace is the chart's release namespace in the test.
const gatekeeperNamespace = "gatekeeper-system"

// chartControllerManagerArgs are the args of the manager container of
// gatekeeper-controller-manager, rendered from Gatekeeper's chart
// (charts/gatekeeper/templates/gatekeeper-controller-manager-deployment.yaml,
// 3.24.0-beta.0) with its default values and release namespace
// gatekeeper-system. PORT, HEALTH and METRICS stand for 8443, 9090 and
// 8888, which the test replaces by free ports.
var chartControllerManagerArgs = []string{
	"--port=PORT",
	"--health-addr=:HEALTH",
	"--prometheus-port=METRICS",
	"--logtostderr",
	"--log-denies=false",
	"--admission-events-involved-namespace=false",
	"--log-level=INFO",
	"--exempt-namespace=gatekeeper-system",
	"--operation=webhook",
	"--enable-external-data=true",
	"--enable-generator-resource-expansion=true",
	"--log-mutations=false",
	"--mutation-annotations=false",
	"--disable-cert-rotation=false",
	"--max-serving-threads=-1",
	"--tls-min-version=1.3",
	"--validating-webhook-configuration-name=gatekeeper-validating-webhook-configuration",
	"--mutating-webhook-configuration-name=gatekeeper-mutating-webhook-configuration",
	"--external-data-provider-response-cache-ttl=3m",
	"--enable-k8s-native-validation=true",
	"--metrics-backend=prometheus",
	"--operation=mutation-webhook",
	"--disable-opa-builtin={http.send}",
}

// chartAuditArgs are the args of the manager container of gatekeeper-audit,
// rendered the same way from gatekeeper-audit-deployment.yaml.
var chartAuditArgs = []string{
	"--audit-interval=60",
	"--log-level=INFO",
	"--constraint-violations-limit=20",
	"--validating-webhook-configuration-name=gatekeeper-validating-webhook-configuration",
	"--mutating-webhook-configuration-name=gatekeeper-mutating-webhook-configuration",
	"--audit-from-cache=false",
	"--audit-chunk-size=500",
	"--audit-match-kind-only=false",
	"--audit-events-involved-namespace=false",
	"--operation=generate",
	"--operation=audit",
	"--operation=status",
	"--operation=mutation-status",
	"--logtostderr",
	"--health-addr=:HEALTH",
	"--prometheus-port=METRICS",
	"--enable-external-data=true",
	"--enable-generator-resource-expansion=true",
	"--metrics-backend=prometheus",
	"--disable-cert-rotation=false",
	"--external-data-provider-response-cache-ttl=3m",
	"--enable-k8s-native-validation=true",
}

// gatekeeperPod is one `portcullis manager` started with a chart's args.
type gatekeeperPod struct {
	*process
	name    string
	healthz string
	metrics string
}

// startChartPod runs bin, the image's /manager, with a chart argument list,
// free ports in place of the chart's, and what a pod gets from its
// Deployment or the control plane instead: POD_NAME and POD_NAMESPACE, a
// kubeconfig, and the webhook registered by URL on 127.0.0.1, as envtest
// has no Service.
func startChartPod(t *testing.T, bin, kubeconfig, name string, chartArgs []string) *gatekeeperPod {
	t.Helper()
	return startChartPodIn(t, bin, kubeconfig, gatekeeperNamespace, name, chartArgs, true)
}

// startChartPodIn is startChartPod in the release namespace namespace;
// register says whether the pod registers its webhook configuration (by
// URL), standing in for the chart's.
func startChartPodIn(t *testing.T, bin, kubeconfig, namespace, name string, chartArgs []string, register bool) *gatekeeperPod {
	t.Helper()
	ports := map[string]string{}
	for _, p := range []string{"PORT", "HEALTH", "METRICS"} {
		ports[p] = strconv.Itoa(unusedPort(t))
	}
	var args []string
	for _, a := range chartArgs {
		for p, v := range ports {
			a = strings.Replace(a, "="+p, "="+v, 1)
			a = strings.Replace(a, "=:"+p, "=:"+v, 1)
		}
		args = append(args, a)
	}
	// envtest has no Service to put in front of the webhook, nor the
	// chart's webhook configuration: the manager registers the webhook by
	// URL instead.
	args = append(args, "--kubeconfig="+kubeconfig, "--webhook-url-host=127.0.0.1")
	if register {
		args = append(args, "--manage-webhook-configuration=true")
	}
	p := startProcessEnv(t, []string{"POD_NAME=" + name, "POD_NAMESPACE=" + namespace}, bin, args...)
	return &gatekeeperPod{
		process: p, name: name,
		healthz: "http://127.0.0.1:" + ports["HEALTH"], metrics: "http://127.0.0.1:" + ports["METRICS"],
	}
}

// deleteWebhookConfigurations deletes, when the test ends, the
// <prefix>-validating- and <prefix>-mutating-webhook-configuration that a
// chart pod registered.
func deleteWebhookConfigurations(t *testing.T, prefix string) {
	t.Helper()
	t.Cleanup(func() {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		vwc.Name = prefix + "-validating-webhook-configuration"
		if err := env.Client.Delete(context.Background(), vwc); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting the webhook configuration: %v", err)
		}
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		mwc.Name = prefix + "-mutating-webhook-configuration"
		if err := env.Client.Delete(context.Background(), mwc); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting the mutating webhook configuration: %v", err)
		}
	})
}

// TestGatekeeperChartArgs starts `portcullis manager` twice, with the
// argument lists of Gatekeeper's chart's controller-manager and audit
// Deployments: both start, become ready and serve metrics; the first
// serves the webhook and does not audit, the second audits (at the chart's
// 60 s, so the test waits for its second run), generates the constraint
// CRDs and does not serve the webhook; both report their status.byPod
// entries; each logs the flags of features Portcullis lacks once.
func TestGatekeeperChartArgs(t *testing.T) {
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gatekeeperNamespace}}
	if err := env.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	// The chart runs the image's /manager with its args: the binary
	// started as manager (cli.ManagerEntryPoint), as the Dockerfile links it.
	bin := filepath.Join(t.TempDir(), "manager")
	if err := os.Symlink(buildPortcullis(t), bin); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Environment.KubeConfig, 0o600); err != nil {
		t.Fatalf("writing kubeconfig: %v", err)
	}

	// A ConfigMap that violates the constraint, there before the audit.
	appNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gk-chart-app"}}
	if err := env.Client.Create(ctx, appNS); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	bad := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled", Namespace: appNS.Name}}
	if err := env.Client.Create(ctx, bad); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), bad) })

	// Leave no webhook behind pointing at a closed port (this cleanup runs
	// after the processes are killed).
	deleteWebhookConfigurations(t, "gatekeeper")
	audit := startChartPod(t, bin, kubeconfig, "gatekeeper-audit-0", chartAuditArgs)
	cm := startChartPod(t, bin, kubeconfig, "gatekeeper-controller-manager-0", chartControllerManagerArgs)
	waitChartPodReady(t, audit)
	waitChartPodReady(t, cm)
	const kind = "K8sChartRequiredLabels"
	apply(t, requiredLabels("v1", kind))
	// The controller-manager, without --operation=generate, loads the
	// template once the audit pod has created its CRD.
	eventually(t, "the template to be loaded by both", func(ctx context.Context) (bool, error) {
		for _, p := range []*gatekeeperPod{cm, audit} {
			if ok, err := templateLoaded(ctx, strings.ToLower(kind), p.name); !ok {
				return false, err
			}
		}
		return true, nil
	})
	apply(t, fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: %s
metadata:
  name: must-have-owner
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: [ConfigMap]
    namespaces: [%s]
  parameters:
    labels: [owner]
`, kind, appNS.Name))
	eventually(t, "the constraint to be enforced by both", func(ctx context.Context) (bool, error) {
		for _, p := range []*gatekeeperPod{cm, audit} {
			if ok, err := constraintEnforced(ctx, kind, "must-have-owner", p.name); !ok {
				return false, err
			}
		}
		return true, nil
	})
	t.Run("Gatekeeper's constraint_enforced check holds", func(t *testing.T) {
		// The controller-manager is the one webhook pod.
		eventually(t, "Gatekeeper's check to hold", func(ctx context.Context) (bool, error) {
			err := gatekeeperConstraintEnforced(ctx, kind, "must-have-owner", []string{cm.name})
			return err == nil, err
		})
		u, err := testenv.GetConstraint(ctx, env.Client, kind, "must-have-owner")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			p   *gatekeeperPod
			ops string
		}{
			{cm, "[mutation-webhook webhook]"},
			{audit, "[audit generate mutation-status status]"},
		} {
			e := testenv.ByPod(u, c.p.name)
			if fmt.Sprint(e["operations"]) != c.ops || e["constraintUID"] != string(u.GetUID()) {
				t.Errorf("%s's constraint entry %v, want operations %s and constraintUID %s", c.p.name, e, c.ops, u.GetUID())
			}
		}
		ct, err := getTemplate(ctx, strings.ToLower(kind))
		if err != nil {
			t.Fatal(err)
		}
		if e := testenv.ByPod(ct, cm.name); fmt.Sprint(e["operations"]) != "[mutation-webhook webhook]" || e["templateUID"] != string(ct.GetUID()) {
			t.Errorf("controller-manager's template entry %v, want Gatekeeper's operations and templateUID", e)
		}
	})

	t.Run("only the audit pod generates CRDs", func(t *testing.T) {
		if !audit.output.Contains("Created constraint CRD") {
			t.Error("the audit pod (--operation=generate) did not create the constraint CRD")
		}
		if cm.output.Contains("constraint CRD", "Created") || cm.output.Contains("Updated constraint CRD") {
			t.Error("the controller-manager (no --operation=generate) wrote a constraint CRD")
		}
	})

	t.Run("controller-manager serves the webhook", func(t *testing.T) {
		waitRefused(t, appNS.Name, "missing required labels")
		if !cm.output.Contains(`"webhook":true`, `"auditInterval":"0s"`, "Starting manager") {
			t.Errorf("controller-manager did not start with the webhook and without the audit")
		}
		if audit.output.Contains("Serving webhook server") {
			t.Errorf("the audit pod serves a webhook")
		}
		// --operation=mutation-webhook: the chart's mutating webhook
		// configuration, by its name.
		eventually(t, "the mutating webhook configuration", func(ctx context.Context) (bool, error) {
			mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
			err := env.Client.Get(ctx, client.ObjectKey{Name: "gatekeeper-mutating-webhook-configuration"}, mwc)
			return err == nil && len(mwc.Webhooks) == 1 && mwc.Webhooks[0].Name == "mutation.gatekeeper.sh", err
		})
		if audit.output.Contains("Applied the mutating webhook configuration") {
			t.Errorf("the audit pod (no --operation=mutation-webhook) applied the mutating webhook configuration")
		}
	})

	t.Run("audit audits", func(t *testing.T) {
		// The first run may have come before the constraint; the next
		// is 60 s later.
		eventually(t, "the audit to report the ConfigMap", func(ctx context.Context) (bool, error) {
			u, err := testenv.GetConstraint(ctx, env.Client, kind, "must-have-owner")
			if err != nil {
				return false, err
			}
			total, _, _ := unstructured.NestedInt64(u.Object, "status", "totalViolations")
			ts, _, _ := unstructured.NestedString(u.Object, "status", "auditTimestamp")
			vs, _, _ := unstructured.NestedSlice(u.Object, "status", "violations")
			return total == 1 && ts != "" && len(vs) == 1, fmt.Errorf("status %v", u.Object["status"])
		})
		if !audit.output.Contains(`"webhook":false`, `"auditInterval":"1m0s"`, "Starting manager") {
			t.Errorf("audit did not start with the audit and without the webhook")
		}
		if cm.output.Contains("Starting audit loop") {
			t.Errorf("the controller-manager audits")
		}
	})

	t.Run("flags of missing features are logged once", func(t *testing.T) {
		for _, c := range []struct {
			p     *gatekeeperPod
			flags []string
		}{
			{cm, []string{"--enable-external-data", "--external-data-provider-response-cache-ttl"}},
			{audit, []string{"--enable-external-data", "--external-data-provider-response-cache-ttl"}},
		} {
			for _, f := range c.flags {
				if n := c.p.output.Count(`"flag":"`+f+`"`, "not supported"); n != 1 {
					t.Errorf("%s logged %s %d times, want once", c.p.name, f, n)
				}
			}
			for _, f := range []string{"--log-mutations", "--mutating-webhook-configuration-name", "--audit-from-cache", "--admission-events-involved-namespace", "--enable-generator-resource-expansion"} {
				if n := c.p.output.Count(`"flag":"` + f + `"`); n != 0 {
					t.Errorf("%s logged %s, set to false or supported, as not supported", c.p.name, f)
				}
			}
		}
		// The mutation operations run: nothing is logged as not supported.
		if n := cm.output.Count(`"flag":"--operation"`); n != 0 {
			t.Errorf("controller-manager logged --operation %d times as not supported", n)
		}
		if n := audit.output.Count(`"flag":"--operation"`); n != 0 {
			t.Errorf("audit logged --operation %d times as not supported", n)
		}
	})
}

// handedOut are the ports unusedPort gave: a port is free until its process
// binds it, so two pods started in a row could be given the same one.
var handedOut sync.Map

// unusedPort is a free port on loopback not given before in this process.
func unusedPort(t *testing.T) int {
	t.Helper()
	for {
		n, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if _, taken := handedOut.LoadOrStore(n, true); !taken {
			return n
		}
	}
}

// refusedConfigMap creates an unlabelled ConfigMap in namespace with a dry
// run: nil if the webhook refuses it with want in the message.
func refusedConfigMap(ctx context.Context, namespace, want string) error {
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: namespace}}
	err := env.Client.Create(ctx, obj, client.DryRunAll)
	switch {
	case err == nil:
		return fmt.Errorf("admitted")
	case !strings.Contains(err.Error(), want):
		return err
	}
	return nil
}

// waitRefused waits for refusedConfigMap to hold.
func waitRefused(t *testing.T, namespace, want string) {
	t.Helper()
	eventually(t, "an unlabelled ConfigMap to be refused", func(ctx context.Context) (bool, error) {
		err := refusedConfigMap(ctx, namespace, want)
		return err == nil, err
	})
}

// waitChartPodReady waits for /readyz and /metrics to answer 200.
func waitChartPodReady(t *testing.T, p *gatekeeperPod) {
	t.Helper()
	eventually(t, p.name+" to be ready", func(ctx context.Context) (bool, error) {
		if err := p.exited(); err != nil {
			t.Fatalf("%v\n%s", err, p.output.String())
		}
		if _, err := httpGet(ctx, p.healthz+"/readyz"); err != nil {
			return false, err
		}
		_, err := httpGet(ctx, p.metrics+"/metrics")
		return err == nil, err
	})
}
