package charts_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// nonDefaultValues changes a value of every kind: counts, policies, lists,
// maps, names, a Gatekeeper-style float tlsMinVersion, and the optional
// values passed only when set.
const nonDefaultValues = `
replicas: 5
auditInterval: 30
constraintViolationsLimit: 50
auditChunkSize: 100
auditMatchKindOnly: true
emitAuditEvents: true
auditEventsInvolvedNamespace: true
auditReports: policyreport
auditReportsPass: true
logDenies: true
emitAdmissionEvents: true
admissionEventsInvolvedNamespace: true
disableMutation: true
validatingWebhookName: policy-validating
validatingWebhookTimeoutSeconds: 10
validatingWebhookFailurePolicy: Fail
validatingWebhookExemptNamespacesLabels:
  team: [infra, platform]
  kubernetes.io/metadata.name: [kube-system]
validatingWebhookObjectSelector:
  matchExpressions:
  - {key: skip-policy, operator: DoesNotExist}
validatingWebhookMatchConditions:
- name: not-leases
  expression: "request.resource.resource != 'leases'"
validatingWebhookAnnotations: {example.com/owner: security}
enableDeleteOperations: true
enableConnectOperations: true
maxServingThreads: 4
logLevel: DEBUG
logLevelKey: severity
logLevelEncoder: capital
readinessRetries: 2
defaultCreateVAPForTemplates: false
defaultCreateVAPBindingForConstraints: false
defaultWaitForVAPBGeneration: 45
syncVAPEnforcementScope: false
defaultK8sNativeValidationFailurePolicy: Ignore
shutdownDelay: 5
enablePprof: true
pprofPort: 6061
enableReferentialRules: false
enableK8sNativeValidation: false
disabledBuiltins: []
image:
  repository: registry.example.com/portcullis
  release: v1.2.3
  pullPolicy: Always
commonLabels: {example.com/team: security}
podAnnotations: {example.com/scrape: "true"}
auditPodAnnotations: {example.com/audit: "yes"}
podLabels: {example.com/tier: policy}
resourceQuota: false
controllerManager:
  port: 9443
  metricsPort: 9888
  healthPort: 9091
  tlsMinVersion: 1.2
  exemptNamespaces: [monitoring]
  exemptNamespacePrefixes: [kube-]
  exemptNamespaceSuffixes: [-system]
  disableGenerateOperation: false
  priorityClassName: ""
  resources:
    requests: {cpu: 200m, memory: 256Mi}
audit:
  disableStatusOperation: true
  priorityClassName: ""
  serviceAccount: {name: portcullis-audit}
pdb:
  controllerManager:
    minAvailable: 50%
service:
  type: NodePort
  healthzPort: 9091
externalCertInjection:
  enabled: true
  secretName: policy-certs
`

// TestChartLint runs helm lint on the chart, with its defaults and with
// nonDefaultValues.
func TestChartLint(t *testing.T) {
	helm, chart := testenv.Helm(t), chartDir(t)
	out := testenv.RunHelm(t, helm, "lint", chart)
	t.Logf("helm lint:\n%s", out)
	out = testenv.RunHelm(t, helm, "lint", chart, "-f", writeValues(t, nonDefaultValues))
	t.Logf("helm lint -f non-default:\n%s", out)
}

// TestChartCRDsAndRBAC holds the chart's generated copies to their
// sources: crds/crds.yaml to config/crd/crds.yaml and the ClusterRole's
// rules to config/rbac/role.yaml (`make manifests` copies both).
func TestChartCRDsAndRBAC(t *testing.T) {
	root := repoRoot(t)
	for _, f := range []struct{ copy, src string }{
		{"charts/portcullis/crds/crds.yaml", "config/crd/crds.yaml"},
		{"charts/portcullis/files/manager-role.yaml", "config/rbac/role.yaml"},
	} {
		a, errA := os.ReadFile(filepath.Join(root, f.copy))
		b, errB := os.ReadFile(filepath.Join(root, f.src))
		if errA != nil || errB != nil {
			t.Fatalf("reading %s and %s: %v, %v", f.copy, f.src, errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: run `make manifests`", f.copy, f.src)
		}
	}
	objs := render(t, "portcullis-system", "")
	role := find(t, objs, "ClusterRole", "", "portcullis-manager-role")
	src, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(src, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(role.Object["rules"], want["rules"]) {
		t.Errorf("the chart's ClusterRole rules differ from config/rbac/role.yaml:\n%v\n%v", role.Object["rules"], want["rules"])
	}
}

// TestChartTemplate renders the chart with its defaults, with
// nonDefaultValues and with mutationValues, checks what each install
// gets, and applies each to an
// envtest API server with kubectl apply --dry-run=server, which validates
// every object against its schema.
func TestChartTemplate(t *testing.T) {
	env := testenv.Start(t)
	for _, c := range []struct {
		name, namespace, values string
		check                   func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{"default", "portcullis-system", "", checkDefault},
		{"non-default", "policy-system", nonDefaultValues, checkNonDefault},
		{"mutation", "mutation-system", mutationValues, checkMutation},
	} {
		t.Run(c.name, func(t *testing.T) {
			rendered := renderRaw(t, c.namespace, c.values)
			objs := testenv.ParseAll(t, string(rendered))
			c.check(t, objs)
			serverDryRun(t, env, c.namespace, rendered, objs)
		})
	}
}

func serverDryRun(t *testing.T, env *testenv.Env, namespace string, rendered []byte, objs []*unstructured.Unstructured) {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("kubectl not found on PATH: %v", err)
		}
		t.Skipf("Skipping the server dry run: kubectl not found on PATH (%v)", err)
	}
	// helm install creates the namespace (--create-namespace); a dry run
	// does not create it for the objects after it.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := env.Client.Create(t.Context(), ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Environment.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), kubectl, "--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(t.TempDir(), "kube-cache"),
		"apply", "--dry-run=server", "-f", "-")
	cmd.Stdin = bytes.NewReader(rendered)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s\n%s", err, out, stderr.String())
	}
	t.Logf("kubectl apply --dry-run=server:\n%s", out)
	lines := strings.Split(string(out), "\n")
	for _, o := range objs {
		kind, name := strings.ToLower(o.GetKind()), "/"+o.GetName()+" "
		if !slices.ContainsFunc(lines, func(l string) bool {
			return strings.HasPrefix(l, kind) && strings.Contains(l, name) && strings.HasSuffix(l, "(server dry run)")
		}) {
			t.Errorf("kubectl apply --dry-run=server did not report %s %s:\n%s", o.GetKind(), o.GetName(), out)
		}
	}
}

// TestChartSchema checks that values of the wrong type or out of range
// fail at helm template, naming the value.
func TestChartSchema(t *testing.T) {
	helm, chart := testenv.Helm(t), chartDir(t)
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"--set", "replicas=three"}, "at '/replicas': got string, want integer"},
		{[]string{"--set", "validatingWebhookFailurePolicy=Sometimes"}, "at '/validatingWebhookFailurePolicy': value must be one of 'Ignore', 'Fail'"},
		{[]string{"--set", "metricsBackends[0]=stackdriver"}, "at '/metricsBackends/0': value must be 'prometheus'"},
		{[]string{"--set", "auditInterval=-1"}, "at '/auditInterval'"},
		{[]string{"--set", "auditInterval=soon"}, "at '/auditInterval'"},
		{[]string{"--set", "controllerManager.port=70000"}, "at '/controllerManager/port': maximum: got 70,000, want 65,535"},
		{[]string{"--set", "logLevel=VERBOSE"}, "at '/logLevel'"},
		{[]string{"--set", "validatingWebhookTimeoutSeconds=60"}, "at '/validatingWebhookTimeoutSeconds'"},
		{[]string{"--set", "logDenies=maybe"}, "at '/logDenies': got string, want boolean"},
		{[]string{"--set", "auditReports=yes"}, "at '/auditReports': value must be one of '', 'policyreport'"},
		{[]string{"--set-json", `controllerManager.exemptNamespaces="kube-system"`}, "at '/controllerManager/exemptNamespaces': got string, want array"},
		{[]string{"--set-json", `validatingWebhookExemptNamespacesLabels={"team":"infra"}`}, "at '/validatingWebhookExemptNamespacesLabels/team': got string, want array"},
		{[]string{"--set", "disableMutation=maybe"}, "at '/disableMutation': got string, want boolean"},
		{[]string{"--set", "logMutations=yes"}, "at '/logMutations': got string, want boolean"},
		{[]string{"--set", "mutationAnnotations=1"}, "at '/mutationAnnotations': got number, want boolean"},
		{[]string{"--set", "mutatingWebhookFailurePolicy=Sometimes"}, "at '/mutatingWebhookFailurePolicy': value must be one of 'Ignore', 'Fail'"},
		{[]string{"--set", "mutatingWebhookReinvocationPolicy=Always"}, "at '/mutatingWebhookReinvocationPolicy': value must be one of 'Never', 'IfNeeded'"},
		{[]string{"--set", "mutatingWebhookTimeoutSeconds=31"}, "at '/mutatingWebhookTimeoutSeconds'"},
		{[]string{"--set", "mutatingWebhookName="}, "at '/mutatingWebhookName'"},
		{[]string{"--set", "mutatingWebhookScope=Everywhere"}, "at '/mutatingWebhookScope'"},
		{[]string{"--set-json", `mutatingWebhookExemptNamespacesLabels={"team":"infra"}`}, "at '/mutatingWebhookExemptNamespacesLabels/team': got string, want array"},
	} {
		args := append([]string{"template", "portcullis", chart}, c.set...)
		out, stderr, err := testenv.TryHelm(t, helm, args...)
		if err == nil {
			t.Errorf("helm %s rendered:\n%s", strings.Join(c.set, " "), out)
			continue
		}
		if !strings.Contains(stderr, "values don't meet the specifications of the schema") || !strings.Contains(stderr, c.want) {
			t.Errorf("helm %s: want the schema error %q, got:\n%s", strings.Join(c.set, " "), c.want, stderr)
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "charts", "portcullis")
}

func writeValues(t *testing.T, values string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// renderRaw runs helm template for release portcullis in namespace, with
// values when not empty.
func renderRaw(t *testing.T, namespace, values string) []byte {
	t.Helper()
	args := []string{"template", "portcullis", chartDir(t), "--namespace", namespace}
	if values != "" {
		args = append(args, "-f", writeValues(t, values))
	}
	return testenv.RunHelm(t, testenv.Helm(t), args...)
}

func render(t *testing.T, namespace, values string) []*unstructured.Unstructured {
	t.Helper()
	return testenv.ParseAll(t, string(renderRaw(t, namespace, values)))
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	if o := lookup(objs, kind, namespace, name); o != nil {
		return o
	}
	t.Fatalf("no %s %s/%s rendered", kind, namespace, name)
	return nil
}

func lookup(objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	return nil
}
