package config_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/webhook"
)

// TestDefaultManifests renders config/default with `kubectl kustomize`, checks
// what an operator gets from `kubectl apply -k config/default`, and applies it
// with --dry-run=server to an envtest API server, which validates every
// object against its schema. It skips without kubectl or the control-plane
// binaries, unless CI is set.
func TestDefaultManifests(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("kubectl not found on PATH: %v", err)
		}
		t.Skipf("Skipping: kubectl not found on PATH (%v)", err)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rendered := run(t, nil, kubectl, "kustomize", filepath.Join(root, "config", "default"))
	objs := parse(t, rendered)

	ns := manager.DefaultNamespace
	wo := webhook.NewOptions()
	t.Run("contents", func(t *testing.T) {
		find(t, objs, "Namespace", "", ns)
		for _, crd := range []string{
			"constrainttemplates.templates.gatekeeper.sh",
			"configs.config.gatekeeper.sh",
			"syncsets.syncset.gatekeeper.sh",
			"assign.mutations.gatekeeper.sh",
			"assignimage.mutations.gatekeeper.sh",
			"assignmetadata.mutations.gatekeeper.sh",
			"modifyset.mutations.gatekeeper.sh",
			"expansiontemplate.expansion.gatekeeper.sh",
		} {
			find(t, objs, "CustomResourceDefinition", "", crd)
		}
		sa := find(t, objs, "ServiceAccount", ns, "portcullis-controller-manager")
		if want := "system:serviceaccount:" + ns + ":" + sa.GetName(); wo.ServiceAccount != sa.GetName() && wo.ServiceAccount != want {
			t.Errorf("--manager-service-account defaults to %q, the ServiceAccount is %s", wo.ServiceAccount, sa.GetName())
		}
		find(t, objs, "ClusterRole", "", "portcullis-manager-role")
		find(t, objs, "ClusterRoleBinding", "", "portcullis-manager-rolebinding")
		find(t, objs, "Role", ns, "portcullis-leader-election-role")
		find(t, objs, "Role", ns, "portcullis-webhook-cert-role")

		webhookLabels := map[string]any{"app.kubernetes.io/name": "portcullis", "control-plane": "controller-manager"}

		// The webhook: 3 replicas, no audit, no leader election.
		wh := find(t, objs, "Deployment", ns, "portcullis-controller-manager")
		checkDeployment(t, wh, 3)
		args := containerArgs(t, wh)
		for _, a := range []string{"manager", "--audit-interval=0", "--health-probe-bind-address=:8081"} {
			if !slices.Contains(args, a) {
				t.Errorf("webhook Deployment args %v lack %s", args, a)
			}
		}
		if slices.Contains(args, "--leader-elect") || slices.Contains(args, "--enable-webhook=false") {
			t.Errorf("webhook Deployment args %v: the webhook replicas must serve and must not compete for the audit's lease", args)
		}
		if sel, _, _ := unstructured.NestedMap(wh.Object, "spec", "selector", "matchLabels"); !equalMaps(sel, webhookLabels) {
			t.Errorf("webhook Deployment selector = %v, want %v", sel, webhookLabels)
		}
		term, _, _ := unstructured.NestedSlice(wh.Object, "spec", "template", "spec", "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution")
		if len(term) != 1 {
			t.Errorf("webhook Deployment: want one preferred pod anti-affinity term, got %v", term)
		} else {
			key, _, _ := unstructured.NestedString(term[0].(map[string]any), "podAffinityTerm", "topologyKey")
			sel, _, _ := unstructured.NestedMap(term[0].(map[string]any), "podAffinityTerm", "labelSelector", "matchLabels")
			if key != "kubernetes.io/hostname" || !equalMaps(sel, webhookLabels) {
				t.Errorf("webhook anti-affinity: topologyKey %q, labels %v", key, sel)
			}
		}
		vols, _, _ := unstructured.NestedSlice(wh.Object, "spec", "template", "spec", "volumes")
		if len(vols) != 1 || mustString(vols[0], "secret", "secretName") != wo.CertSecretName {
			t.Errorf("webhook Deployment volumes = %v, want the Secret %s (--cert-secret-name)", vols, wo.CertSecretName)
		}

		// The audit: 1 replica, leader election, no webhook.
		au := find(t, objs, "Deployment", ns, "portcullis-audit")
		checkDeployment(t, au, 1)
		args = containerArgs(t, au)
		for _, a := range []string{"manager", "--enable-webhook=false", "--leader-elect"} {
			if !slices.Contains(args, a) {
				t.Errorf("audit Deployment args %v lack %s", args, a)
			}
		}
		if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--audit-interval=0") }) {
			t.Errorf("audit Deployment args %v disable the audit", args)
		}
		// A writable /tmp under readOnlyRootFilesystem, for the results that
		// --audit-reports spills.
		vols, _, _ = unstructured.NestedSlice(au.Object, "spec", "template", "spec", "volumes")
		containers, _, _ := unstructured.NestedSlice(au.Object, "spec", "template", "spec", "containers")
		var mounts []any
		if len(containers) > 0 {
			mounts, _, _ = unstructured.NestedSlice(containers[0].(map[string]any), "volumeMounts")
		}
		if len(vols) != 1 || vols[0].(map[string]any)["emptyDir"] == nil || len(mounts) != 1 || mustString(mounts[0], "mountPath") != "/tmp" {
			t.Errorf("audit Deployment volumes %v, mounts %v; want an emptyDir at /tmp", vols, mounts)
		}
		auLabels, _, _ := unstructured.NestedMap(au.Object, "spec", "template", "metadata", "labels")
		if matches(webhookLabels, auLabels) {
			t.Errorf("the audit pods (%v) must not be behind the webhook Service or in the webhook's PDB", auLabels)
		}

		pdb := find(t, objs, "PodDisruptionBudget", ns, "portcullis-controller-manager")
		if sel, _, _ := unstructured.NestedMap(pdb.Object, "spec", "selector", "matchLabels"); !equalMaps(sel, webhookLabels) {
			t.Errorf("PDB selector = %v, want the webhook pods %v", sel, webhookLabels)
		}
		maxU, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "maxUnavailable")
		minA, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable")
		if maxU == nil && minA == nil {
			t.Errorf("PDB has neither maxUnavailable nor minAvailable")
		}

		svc := find(t, objs, "Service", ns, wo.ServiceName)
		if sel, _, _ := unstructured.NestedMap(svc.Object, "spec", "selector"); !equalMaps(sel, webhookLabels) {
			t.Errorf("Service selector = %v, want %v", sel, webhookLabels)
		}
		find(t, objs, "Secret", ns, wo.CertSecretName)

		vwc := find(t, objs, "ValidatingWebhookConfiguration", "", wo.ConfigurationName)
		hooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
		if len(hooks) == 0 {
			t.Errorf("ValidatingWebhookConfiguration has no webhooks")
		}
		for _, h := range hooks {
			name := mustString(h, "clientConfig", "service", "name")
			namespace := mustString(h, "clientConfig", "service", "namespace")
			if name != wo.ServiceName || namespace != ns {
				t.Errorf("webhook %s calls Service %s/%s, want %s/%s", mustString(h, "name"), namespace, name, ns, wo.ServiceName)
			}
			if b := mustString(h, "clientConfig", "caBundle"); b != "" {
				t.Errorf("webhook %s has a caBundle in the manifests; the manager's rotation injects it", mustString(h, "name"))
			}
		}
	})

	t.Run("server dry-run", func(t *testing.T) {
		env := testenv.Start(t)
		// Objects of a namespace that does not exist fail a dry run (the
		// Namespace in the same apply is not created by it): create it.
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if err := env.Client.Create(t.Context(), nsObj); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		if len(env.Environment.KubeConfig) == 0 {
			t.Fatal("envtest wrote no kubeconfig")
		}
		if err := os.WriteFile(kubeconfig, env.Environment.KubeConfig, 0o600); err != nil {
			t.Fatal(err)
		}
		// The CRDs are envtest's (config/crd/crds.yaml), so the dry run
		// updates them as an upgrade would.
		out := string(run(t, rendered, kubectl, "--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(t.TempDir(), "kube-cache"), "apply", "--dry-run=server", "-f", "-"))
		t.Logf("kubectl apply --dry-run=server:\n%s", out)
		lines := strings.Split(out, "\n")
		for _, o := range objs {
			kind, name := strings.ToLower(o.GetKind()), "/"+o.GetName()+" "
			if !slices.ContainsFunc(lines, func(l string) bool {
				return strings.HasPrefix(l, kind) && strings.Contains(l, name) && strings.HasSuffix(l, "(server dry run)")
			}) {
				t.Errorf("kubectl apply --dry-run=server did not report %s %s:\n%s", o.GetKind(), o.GetName(), out)
			}
		}
	})
}

// checkDeployment checks what both Deployments share: replicas, the
// probes, resources and the security context.
func checkDeployment(t *testing.T, d *unstructured.Unstructured, replicas int64) {
	t.Helper()
	name := d.GetName()
	if got, _, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "replicas"); num(got) != replicas {
		t.Errorf("%s: replicas = %d, want %d", name, got, replicas)
	}
	spec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	if v, _, _ := unstructured.NestedBool(spec, "securityContext", "runAsNonRoot"); !v {
		t.Errorf("%s: pod securityContext.runAsNonRoot not true", name)
	}
	if v, _, _ := unstructured.NestedString(spec, "securityContext", "seccompProfile", "type"); v != "RuntimeDefault" {
		t.Errorf("%s: seccompProfile = %q, want RuntimeDefault", name, v)
	}
	if sa, _, _ := unstructured.NestedString(spec, "serviceAccountName"); sa != "portcullis-controller-manager" {
		t.Errorf("%s: serviceAccountName = %q", name, sa)
	}
	containers, _, _ := unstructured.NestedSlice(spec, "containers")
	if len(containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", name, len(containers))
	}
	c := containers[0].(map[string]any)
	if img, _ := c["image"].(string); !strings.HasPrefix(img, "ghcr.io/portcullis-dev/portcullis:") {
		t.Errorf("%s: image %q", name, img)
	}
	if v, _, _ := unstructured.NestedBool(c, "securityContext", "readOnlyRootFilesystem"); !v {
		t.Errorf("%s: readOnlyRootFilesystem not true", name)
	}
	if v, found, _ := unstructured.NestedBool(c, "securityContext", "allowPrivilegeEscalation"); !found || v {
		t.Errorf("%s: allowPrivilegeEscalation not false", name)
	}
	if v, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "drop"); !slices.Equal(v, []string{"ALL"}) {
		t.Errorf("%s: capabilities.drop = %v, want [ALL]", name, v)
	}
	for _, p := range []struct{ probe, path string }{{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}} {
		path, _, _ := unstructured.NestedString(c, p.probe, "httpGet", "path")
		port, _, _ := unstructured.NestedFieldNoCopy(c, p.probe, "httpGet", "port")
		if path != p.path || (port != "probes" && num(port) != 8081) {
			t.Errorf("%s: %s = %s on port %v, want %s on 8081", name, p.probe, path, port, p.path)
		}
	}
	ports, _, _ := unstructured.NestedSlice(c, "ports")
	found := false
	for _, p := range ports {
		m := p.(map[string]any)
		if m["name"] == "probes" && num(m["containerPort"]) == 8081 {
			found = true
		}
	}
	if !found {
		t.Errorf("%s: no port probes=8081 (--health-probe-bind-address=:8081)", name)
	}
	for _, kind := range []string{"requests", "limits"} {
		for _, res := range []string{"cpu", "memory"} {
			if v, _, _ := unstructured.NestedString(c, "resources", kind, res); v == "" {
				t.Errorf("%s: no resources.%s.%s", name, kind, res)
			}
		}
	}
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

// num is a YAML number (float64 from sigs.k8s.io/yaml), or -1.
func num(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return -1
}

func mustString(v any, fields ...string) string {
	m, _ := v.(map[string]any)
	s, _, _ := unstructured.NestedString(m, fields...)
	return s
}

func equalMaps(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// matches reports whether labels satisfy the selector sel.
func matches(sel, labels map[string]any) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s in the rendered config/default", kind, namespace, name)
	return nil
}

func parse(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	return testenv.ParseAll(t, string(data))
}

func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}
