package manager_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// chartNamespace is the release namespace of TestChartInstall: a namespace
// of its own, so that its audit pod's leader election Lease is not the
// other tests'.
const chartNamespace = "portcullis-chart"

var chartRuns atomic.Int32

// TestChartInstall renders charts/portcullis with two webhook replicas and
// runs its pods as config/default's run in the replica tests: the
// controller-manager's argument list twice and the audit's once, each
// `portcullis manager` started as the image starts it, with its pod's name
// and namespace. All three start without a flag error and become ready;
// both webhook replicas and the audit pod load the template and enforce the
// constraint, each under its own byPod entry, so that Gatekeeper's
// constraint_enforced check holds for the two webhook pods; a webhook
// replica refuses a bad ConfigMap through the API server; only the audit
// pod creates the constraint CRD, audits and holds the leader Lease; every
// pod loads a mutator and reports it (the audit with
// --operation=mutation-status), and a webhook replica mutates a ConfigMap
// before it is judged, marked as mutationAnnotations asks; no flag is logged
// as not supported.
func TestChartInstall(t *testing.T) {
	helm := testenv.Helm(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	rendered := testenv.RunHelm(t, helm, "template", "portcullis", filepath.Join(root, "charts", "portcullis"),
		"--namespace", chartNamespace, "--set", "replicas=2", "--set", "auditInterval=5", "--set", "mutationAnnotations=true")
	var cmArgs, auditArgs []string
	for _, o := range testenv.ParseAll(t, string(rendered)) {
		if o.GetKind() != "Deployment" {
			continue
		}
		replicas, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas")
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
		switch o.GetName() {
		case "portcullis-controller-manager":
			cmArgs = placeholders(args)
			if fmt.Sprint(replicas) != "2" {
				t.Errorf("controller-manager replicas = %v, want 2", replicas)
			}
		case "portcullis-audit":
			auditArgs = placeholders(args)
		}
	}
	if cmArgs == nil || auditArgs == nil {
		t.Fatalf("the chart rendered no controller-manager or audit Deployment:\n%s", rendered)
	}
	testenv.EnsureNamespaces(t, env.Client, chartNamespace)
	appNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "chart-app"}}
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
	deleteWebhookConfigurations(t, "portcullis")

	bin := buildPortcullis(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Environment.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	audit := startChartPodIn(t, bin, kubeconfig, chartNamespace, "portcullis-audit-0", auditArgs, false)
	// The chart renders the webhook configuration itself; envtest has
	// no Service, so the first replica registers itself by URL instead.
	cm0 := startChartPodIn(t, bin, kubeconfig, chartNamespace, "portcullis-controller-manager-0", cmArgs, true)
	cm1 := startChartPodIn(t, bin, kubeconfig, chartNamespace, "portcullis-controller-manager-1", cmArgs, false)
	pods := []*gatekeeperPod{audit, cm0, cm1}
	for _, p := range pods {
		waitChartPodReady(t, p)
	}

	kind := fmt.Sprintf("K8sChartInstall%d", chartRuns.Add(1))
	apply(t, requiredLabels("v1", kind))
	apply(t, fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: %s
metadata:
  name: chart-owner
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: [ConfigMap]
    namespaces: [%s]
  parameters:
    labels: [owner]
`, kind, appNS.Name))
	for _, p := range pods {
		eventually(t, p.name+" to enforce the constraint", func(ctx context.Context) (bool, error) {
			return constraintEnforced(ctx, kind, "chart-owner", p.name)
		})
	}
	eventually(t, "Gatekeeper's constraint_enforced check for both webhook pods", func(ctx context.Context) (bool, error) {
		err := gatekeeperConstraintEnforced(ctx, kind, "chart-owner", []string{cm0.name, cm1.name})
		return err == nil, err
	})
	ct, err := getTemplate(ctx, strings.ToLower(kind))
	if err != nil {
		t.Fatal(err)
	}
	if ids := byPodIDs(ct); ids != "portcullis-audit-0,portcullis-controller-manager-0,portcullis-controller-manager-1" {
		t.Errorf("template byPod ids = %s, want one entry per pod", ids)
	}
	waitRefused(t, appNS.Name, "[chart-owner] missing required labels")
	eventually(t, "the audit to report the ConfigMap", func(ctx context.Context) (bool, error) {
		u, err := testenv.GetConstraint(ctx, env.Client, kind, "chart-owner")
		if err != nil {
			return false, err
		}
		total, _, _ := unstructured.NestedInt64(u.Object, "status", "totalViolations")
		return total == 1, fmt.Errorf("status %v", u.Object["status"])
	})

	if !audit.output.Contains("Created constraint CRD") {
		t.Error("the audit pod (--operation=generate) did not create the constraint CRD")
	}
	for _, p := range []*gatekeeperPod{cm0, cm1} {
		if p.output.Contains("Created constraint CRD") || p.output.Contains("Starting audit loop") {
			t.Errorf("%s wrote a constraint CRD or audits", p.name)
		}
		if !p.output.Contains(`"webhook":true`, `"auditInterval":"0s"`, `"namespace":"`+chartNamespace+`"`, "Starting manager") {
			t.Errorf("%s did not start with the webhook, without the audit, in %s", p.name, chartNamespace)
		}
	}
	if !audit.output.Contains(`"webhook":false`, `"auditInterval":"5s"`, `"leaderElection":true`, "Starting manager") ||
		!audit.output.Contains("Successfully acquired lease") {
		t.Errorf("the audit pod did not start with the audit and leader election, without the webhook")
	}
	chartMutation(t, pods, appNS.Name)
	for _, p := range pods {
		for line := range strings.SplitSeq(p.output.String(), "\n") {
			if strings.Contains(line, "Gatekeeper flag accepted but not supported") {
				t.Errorf("%s: %s", p.name, line)
			}
		}
	}
}

// chartMutation: every pod of the chart loads an AssignMetadata and
// reports it enforced under its own byPod entry, and the webhook replicas
// (--operation=mutation-webhook) mutate a ConfigMap the constraint would
// refuse without the label, annotated as --mutation-annotations asks.
func chartMutation(t *testing.T, pods []*gatekeeperPod, namespace string) {
	t.Helper()
	apply(t, fmt.Sprintf(`apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: chart-owner-label
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: [ConfigMap]
    namespaces: [%s]
  location: metadata.labels.owner
  parameters:
    assign:
      value: chart
`, namespace))
	for _, p := range pods {
		eventually(t, p.name+" to enforce the mutator", func(ctx context.Context) (bool, error) {
			return mutatorEnforced(ctx, "AssignMetadata", "chart-owner-label", p.name)
		})
	}
	eventually(t, "a ConfigMap to be mutated, then admitted", func(ctx context.Context) (bool, error) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mutated", Namespace: namespace}}
		if err := env.Client.Create(ctx, cm, client.DryRunAll); err != nil {
			return false, err
		}
		ok := cm.Labels["owner"] == "chart" && cm.Annotations["gatekeeper.sh/mutation-id"] != "" &&
			cm.Annotations["gatekeeper.sh/mutations"] == "AssignMetadata//chart-owner-label:1"
		return ok, fmt.Errorf("labels %v, annotations %v", cm.Labels, cm.Annotations)
	})
}

// placeholders puts PORT, HEALTH and METRICS in place of the chart's
// ports, for startChartPodIn to fill with free ones.
func placeholders(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--port="):
			a = "--port=PORT"
		case strings.HasPrefix(a, "--health-addr="):
			a = "--health-addr=:HEALTH"
		case strings.HasPrefix(a, "--prometheus-port="):
			a = "--prometheus-port=METRICS"
		}
		out[i] = a
	}
	return out
}
