package charts_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/manager"
)

// webhookPodLabels are the webhook pods' selector labels, and auditPodLabels
// the audit's.
var (
	webhookPodLabels = map[string]any{
		"app.kubernetes.io/name": "portcullis", "app.kubernetes.io/instance": "portcullis",
		"control-plane": "controller-manager", "gatekeeper.sh/operation": "webhook",
	}
	auditPodLabels = map[string]any{
		"app.kubernetes.io/name": "portcullis", "app.kubernetes.io/instance": "portcullis",
		"control-plane": "audit-controller", "gatekeeper.sh/operation": "audit",
	}
)

func checkDefault(t *testing.T, objs []*unstructured.Unstructured) {
	ns := "portcullis-system"
	find(t, objs, "ServiceAccount", ns, "portcullis-controller-manager")
	for _, k := range []string{"ClusterRole", "ClusterRoleBinding"} {
		find(t, objs, k, "", "portcullis-manager-"+map[string]string{"ClusterRole": "role", "ClusterRoleBinding": "rolebinding"}[k])
	}
	find(t, objs, "Role", ns, "portcullis-manager-role")
	find(t, objs, "RoleBinding", ns, "portcullis-manager-rolebinding")
	find(t, objs, "Secret", ns, "portcullis-webhook-server-cert")
	find(t, objs, "ResourceQuota", ns, "portcullis-critical-pods")

	cm := find(t, objs, "Deployment", ns, "portcullis-controller-manager")
	au := find(t, objs, "Deployment", ns, "portcullis-audit")
	checkDeployment(t, cm, 3, webhookPodLabels, "ghcr.io/portcullis-dev/portcullis:latest", 9090)
	checkDeployment(t, au, 1, auditPodLabels, "ghcr.io/portcullis-dev/portcullis:latest", 9090)
	hasArgs(t, cm, true, "--port=8443", "--health-addr=:9090", "--prometheus-port=8888", "--operation=webhook",
		"--operation=mutation-webhook", "--manage-webhook-configuration=false", "--exempt-namespace="+ns,
		"--disable-opa-builtin={http.send}", "--log-denies=false", "--emit-admission-events=false", "--timeout-seconds=3",
		"--cert-secret-name=portcullis-webhook-server-cert", "--validating-webhook-configuration-name=portcullis-validating-webhook-configuration",
		"--shutdown-delay=10")
	hasArgs(t, cm, false, "--operation=audit", "--operation=generate", "--operation=status", "--leader-elect", "--readiness-retries=0",
		"--default-create-vap-for-templates=true", "--sync-vap-enforcement-scope=true")
	hasArgs(t, au, true, "--audit-interval=60", "--operation=generate", "--operation=audit", "--operation=status",
		"--operation=mutation-status", "--leader-elect", "--constraint-violations-limit=20", "--audit-chunk-size=500",
		"--emit-audit-events=false", "--exempt-namespace="+ns)
	hasArgs(t, au, false, "--operation=webhook", "--operation=mutation-webhook", "--audit-reports=policyreport", "--audit-reports-pass")
	checkAuditTmp(t, au)
	if vols := nested(cm, "spec", "template", "spec", "volumes"); !strings.Contains(fmt.Sprint(vols), "secretName:portcullis-webhook-server-cert") {
		t.Errorf("controller-manager volumes %v lack the certificate Secret", vols)
	}

	pdb := find(t, objs, "PodDisruptionBudget", ns, "portcullis-controller-manager")
	checkSelects(t, "the PDB", nested(pdb, "spec", "selector", "matchLabels"))
	if v := nested(pdb, "spec", "minAvailable"); fmt.Sprint(v) != "1" {
		t.Errorf("PDB minAvailable = %v, want 1", v)
	}
	svc := find(t, objs, "Service", ns, "portcullis-webhook-service")
	checkSelects(t, "the Service", nested(svc, "spec", "selector"))

	vwc := find(t, objs, "ValidatingWebhookConfiguration", "", "portcullis-validating-webhook-configuration")
	hooks := webhooks(t, vwc)
	for name, want := range map[string]string{
		"validation.gatekeeper.sh":         "/v1/admit Ignore 3",
		"check-ignore-label.gatekeeper.sh": "/v1/admitlabel Fail 3",
		"check-policy.gatekeeper.sh":       "/v1/admitpolicy Ignore 3",
	} {
		h := hooks[name]
		if h == nil {
			t.Errorf("no webhook %s", name)
			continue
		}
		if got := fmt.Sprintf("%v %v %v", nested2(h, "clientConfig", "service", "path"), h["failurePolicy"], h["timeoutSeconds"]); got != want {
			t.Errorf("webhook %s: path, failurePolicy, timeout = %s, want %s", name, got, want)
		}
		if s := fmt.Sprintf("%v/%v", nested2(h, "clientConfig", "service", "namespace"), nested2(h, "clientConfig", "service", "name")); s != ns+"/portcullis-webhook-service" {
			t.Errorf("webhook %s calls %s", name, s)
		}
	}
	if sel := fmt.Sprint(nested2(hooks["validation.gatekeeper.sh"], "namespaceSelector", "matchExpressions")); sel !=
		"[map[key:admission.gatekeeper.sh/ignore operator:DoesNotExist] map[key:kubernetes.io/metadata.name operator:NotIn values:[portcullis-system]]]" {
		t.Errorf("validation.gatekeeper.sh namespaceSelector %s", sel)
	}
	rules := fmt.Sprint(nested2(hooks["validation.gatekeeper.sh"], "rules"))
	for _, r := range []string{"operations:[CREATE UPDATE]", "pods/exec", "deployments/scale", "resources:[*"} {
		if !strings.Contains(rules, r) {
			t.Errorf("validation.gatekeeper.sh rules %s lack %s", rules, r)
		}
	}
	checkDefaultMutation(t, objs, ns)
}

func checkNonDefault(t *testing.T, objs []*unstructured.Unstructured) {
	ns := "policy-system"
	find(t, objs, "ServiceAccount", ns, "portcullis-controller-manager")
	find(t, objs, "ServiceAccount", ns, "portcullis-audit")
	for _, gone := range [][3]string{
		{"Secret", ns, "policy-certs"}, {"ResourceQuota", ns, "portcullis-critical-pods"},
		{"MutatingWebhookConfiguration", "", "portcullis-mutating-webhook-configuration"},
	} {
		if lookup(objs, gone[0], gone[1], gone[2]) != nil {
			t.Errorf("%s %s/%s rendered", gone[0], gone[1], gone[2])
		}
	}
	crb := find(t, objs, "ClusterRoleBinding", "", "portcullis-manager-rolebinding")
	if s := fmt.Sprint(crb.Object["subjects"]); !strings.Contains(s, "portcullis-audit") || !strings.Contains(s, "portcullis-controller-manager") {
		t.Errorf("ClusterRoleBinding subjects %s lack a ServiceAccount", s)
	}

	cm := find(t, objs, "Deployment", ns, "portcullis-controller-manager")
	au := find(t, objs, "Deployment", ns, "portcullis-audit")
	checkDeployment(t, cm, 5, webhookPodLabels, "registry.example.com/portcullis:v1.2.3", 9091)
	checkDeployment(t, au, 1, auditPodLabels, "registry.example.com/portcullis:v1.2.3", 9090)
	hasArgs(t, cm, true, "--port=9443", "--health-addr=:9091", "--prometheus-port=9888", "--log-level=DEBUG",
		"--log-denies=true", "--emit-admission-events=true", "--admission-events-involved-namespace=true",
		"--operation=webhook", "--operation=generate", "--tls-min-version=1.2", "--exempt-namespace=monitoring",
		"--exempt-namespace-prefix=kube-", "--exempt-namespace-suffix=-system", "--log-level-key=severity",
		"--log-level-encoder=capital", "--readiness-retries=2", "--shutdown-delay=5", "--enable-pprof=true", "--pprof-port=6061",
		"--enable-referential-rules=false", "--enable-k8s-native-validation=false", "--disable-cert-rotation=true",
		"--cert-secret-name=policy-certs", "--timeout-seconds=10", "--enable-delete-operations=true",
		"--enable-connect-operations=true", "--max-serving-threads=4", "--validating-webhook-configuration-name=policy-validating")
	hasArgs(t, cm, false, "--operation=mutation-webhook", "--disable-opa-builtin={http.send}", "--mutation-timeout-seconds=1")
	hasArgs(t, au, true, "--audit-interval=30", "--constraint-violations-limit=50", "--audit-chunk-size=100",
		"--audit-match-kind-only=true", "--emit-audit-events=true", "--audit-events-involved-namespace=true",
		"--operation=generate", "--operation=audit", "--disable-cert-rotation=true", "--readiness-retries=2",
		"--default-create-vap-for-templates=false", "--default-create-vap-binding-for-constraints=false",
		"--default-wait-for-vapb-generation=45", "--sync-vap-enforcement-scope=false",
		"--default-k8s-native-validation-failure-policy=Ignore", "--audit-reports=policyreport", "--audit-reports-pass")
	hasArgs(t, au, false, "--operation=status", "--operation=mutation-status")
	checkAuditTmp(t, au)
	if sa := nested(au, "spec", "template", "spec", "serviceAccountName"); sa != "portcullis-audit" {
		t.Errorf("audit serviceAccountName = %v", sa)
	}
	if a := fmt.Sprint(nested(au, "spec", "template", "metadata", "annotations")); a != "map[example.com/audit:yes example.com/scrape:true]" {
		t.Errorf("audit pod annotations = %s", a)
	}
	if l := nested(cm, "spec", "template", "metadata", "labels"); fmt.Sprint(l.(map[string]any)["example.com/tier"]) != "policy" {
		t.Errorf("controller-manager pod labels %v lack podLabels", l)
	}
	if l := cm.GetLabels()["example.com/team"]; l != "security" {
		t.Errorf("controller-manager labels %v lack commonLabels", cm.GetLabels())
	}
	if v := nested(cm, "spec", "template", "spec", "volumes"); !strings.Contains(fmt.Sprint(v), "secretName:policy-certs") {
		t.Errorf("controller-manager volumes %v: want the externally injected Secret policy-certs", v)
	}

	pdb := find(t, objs, "PodDisruptionBudget", ns, "portcullis-controller-manager")
	if v := nested(pdb, "spec", "minAvailable"); v != "50%" {
		t.Errorf("PDB minAvailable = %v, want 50%%", v)
	}
	svc := find(t, objs, "Service", ns, "portcullis-webhook-service")
	if got := fmt.Sprint(nested(svc, "spec", "type"), " ", nested(svc, "spec", "ports")); !strings.Contains(got, "NodePort") || !strings.Contains(got, "port:9091") {
		t.Errorf("Service type and ports %s, want NodePort with the healthz port", got)
	}

	vwc := find(t, objs, "ValidatingWebhookConfiguration", "", "policy-validating")
	if a := vwc.GetAnnotations()["example.com/owner"]; a != "security" {
		t.Errorf("webhook configuration annotations %v", vwc.GetAnnotations())
	}
	h := webhooks(t, vwc)["validation.gatekeeper.sh"]
	if got := fmt.Sprintf("%v %v", h["failurePolicy"], h["timeoutSeconds"]); got != "Fail 10" {
		t.Errorf("validation.gatekeeper.sh failurePolicy, timeout = %s", got)
	}
	want := "[map[key:admission.gatekeeper.sh/ignore operator:DoesNotExist] " +
		"map[key:kubernetes.io/metadata.name operator:NotIn values:[kube-system policy-system]] " +
		"map[key:team operator:NotIn values:[infra platform]]]"
	if sel := fmt.Sprint(nested2(h, "namespaceSelector", "matchExpressions")); sel != want {
		t.Errorf("namespaceSelector %s, want %s", sel, want)
	}
	for field, want := range map[string]string{
		"objectSelector":  "skip-policy",
		"matchConditions": "not-leases",
		"rules":           "operations:[CREATE UPDATE DELETE CONNECT]",
	} {
		if got := fmt.Sprint(h[field]); !strings.Contains(got, want) {
			t.Errorf("validation.gatekeeper.sh %s = %s, want %s", field, got, want)
		}
	}
}

// TestChartArgs parses the rendered argument lists of both containers, for
// the defaults and nonDefaultValues, with `portcullis manager`'s flags and
// completes them: no flag is unknown, refused or logged as not supported,
// and each container does its part of Gatekeeper's --operation split,
// mutation's included.
func TestChartArgs(t *testing.T) {
	for _, c := range []struct{ name, values string }{{"default", ""}, {"non-default", nonDefaultValues}, {"mutation", mutationValues}} {
		t.Run(c.name, func(t *testing.T) {
			objs := render(t, "portcullis-system", c.values)
			for _, d := range []struct {
				name    string
				webhook bool
			}{{"portcullis-controller-manager", true}, {"portcullis-audit", false}} {
				args := containerArgs(t, find(t, objs, "Deployment", "portcullis-system", d.name))
				if len(args) == 0 || args[0] != "manager" {
					t.Fatalf("%s args %v do not start with manager", d.name, args)
				}
				o := manager.NewOptions()
				fs := pflag.NewFlagSet("manager", pflag.ContinueOnError)
				o.AddFlags(fs)
				if err := fs.Parse(args[1:]); err != nil {
					t.Fatalf("%s: parsing %v: %v", d.name, args[1:], err)
				}
				if err := o.Complete(); err != nil {
					t.Fatalf("%s: %v", d.name, err)
				}
				if o.Webhook.Enabled != d.webhook || (o.Audit.Interval == 0) != d.webhook {
					t.Errorf("%s: webhook %t, audit interval %s", d.name, o.Webhook.Enabled, o.Audit.Interval)
				}
				if !d.webhook && o.Audit.Interval != map[string]time.Duration{"default": time.Minute, "non-default": 30 * time.Second, "mutation": time.Minute}[c.name] {
					t.Errorf("%s: audit interval %s", d.name, o.Audit.Interval)
				}
				for _, u := range o.Unsupported() {
					t.Errorf("%s: %s=%s is logged as not supported: %s", d.name, u.Flag, u.Value, u.Reason)
				}
				checkMutationOptions(t, d.name, &o, d.webhook, c.values)
			}
		})
	}
}

// checkDeployment checks what both Deployments share.
func checkDeployment(t *testing.T, d *unstructured.Unstructured, replicas int64, labels map[string]any, image string, healthPort int64) {
	t.Helper()
	name := d.GetName()
	if got := nested(d, "spec", "replicas"); num(got) != replicas {
		t.Errorf("%s: replicas = %v, want %d", name, got, replicas)
	}
	sel, _ := nested(d, "spec", "selector", "matchLabels").(map[string]any)
	if fmt.Sprint(sel) != fmt.Sprint(labels) {
		t.Errorf("%s: selector %v, want %v", name, sel, labels)
	}
	podLabels, _ := nested(d, "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range labels {
		if podLabels[k] != v {
			t.Errorf("%s: pod labels %v lack %s=%v", name, podLabels, k, v)
		}
	}
	spec, _ := nested(d, "spec", "template", "spec").(map[string]any)
	if v := fmt.Sprint(nested2(spec, "securityContext", "seccompProfile", "type")); v != "RuntimeDefault" {
		t.Errorf("%s: seccompProfile %s", name, v)
	}
	containers, _ := spec["containers"].([]any)
	if len(containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", name, len(containers))
	}
	c, _ := containers[0].(map[string]any)
	if c["image"] != image {
		t.Errorf("%s: image %v, want %s", name, c["image"], image)
	}
	for _, f := range []string{"readOnlyRootFilesystem", "runAsNonRoot"} {
		if v := nested2(c, "securityContext", f); v != true {
			t.Errorf("%s: securityContext.%s = %v", name, f, v)
		}
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if p, port := nested2(c, probe, "httpGet", "path"), nested2(c, probe, "httpGet", "port"); p != path || num(port) != healthPort {
			t.Errorf("%s: %s %v on %v, want %s on %d", name, probe, p, port, path, healthPort)
		}
	}
	env := fmt.Sprint(c["env"])
	for _, e := range []string{"name:POD_NAME", "name:POD_NAMESPACE"} {
		if !strings.Contains(env, e) {
			t.Errorf("%s: env %s lacks %s", name, env, e)
		}
	}
}

func hasArgs(t *testing.T, d *unstructured.Unstructured, want bool, args ...string) {
	t.Helper()
	got := containerArgs(t, d)
	for _, a := range args {
		if slices.Contains(got, a) != want {
			t.Errorf("%s args %v: has %s = %t, want %t", d.GetName(), got, a, !want, want)
		}
	}
}

// checkSelects checks that a selector picks the webhook pods and not the
// audit's.
func checkSelects(t *testing.T, what string, sel any) {
	t.Helper()
	m, _ := sel.(map[string]any)
	matches := func(labels map[string]any) bool {
		for k, v := range m {
			if labels[k] != v {
				return false
			}
		}
		return len(m) > 0
	}
	if !matches(webhookPodLabels) || matches(auditPodLabels) {
		t.Errorf("%s selects %v: want the webhook pods only", what, m)
	}
}

func webhooks(t *testing.T, u *unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	list, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
	out := map[string]map[string]any{}
	for _, h := range list {
		m, _ := h.(map[string]any)
		out[fmt.Sprint(m["name"])] = m
	}
	return out
}

func containerArgs(t *testing.T, d *unstructured.Unstructured) []string {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		t.Fatalf("%s: no containers", d.GetName())
	}
	args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	return args
}

func nested(u *unstructured.Unstructured, fields ...string) any { return nested2(u.Object, fields...) }

func nested2(m map[string]any, fields ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(m, fields...)
	return v
}

// num is a YAML number, or -1.
func num(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return -1
}

// checkAuditTmp checks that the audit container has a writable emptyDir at
// /tmp/audit, where the reports' results wait during a run (its root
// filesystem is read-only), as Gatekeeper's chart mounts one there.
func checkAuditTmp(t *testing.T, au *unstructured.Unstructured) {
	t.Helper()
	spec, _ := nested(au, "spec", "template", "spec").(map[string]any)
	containers, _ := spec["containers"].([]any)
	if len(containers) == 0 {
		t.Fatal("the audit Deployment has no container")
	}
	c, _ := containers[0].(map[string]any)
	mounts, _ := c["volumeMounts"].([]any)
	volume := ""
	for _, m := range mounts {
		if m, _ := m.(map[string]any); m["mountPath"] == "/tmp/audit" && m["readOnly"] != true {
			volume, _ = m["name"].(string)
		}
	}
	vols, _ := spec["volumes"].([]any)
	for _, v := range vols {
		if v, _ := v.(map[string]any); volume != "" && v["name"] == volume && v["emptyDir"] != nil {
			return
		}
	}
	t.Errorf("the audit container has no writable emptyDir at /tmp/audit: volumeMounts %v, volumes %v", mounts, vols)
}
