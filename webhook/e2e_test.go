package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// The acceptance policies. Every constraint is limited to namespaces named
// acc-*, so that the tests' other namespaces are never refused.
const (
	labelTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredtestlabel
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredTestLabel
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8srequiredtestlabel
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels.test
        msg := sprintf("namespace %v must carry the label test", [input.review.object.metadata.name])
      }
`
	labelConstraint = `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredTestLabel
metadata:
  name: ns-must-have-test
spec:
  enforcementAction: deny
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["Namespace"]
    namespaces: ["acc-*"]
`
	protectTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sprotectednamespace
spec:
  crd:
    spec:
      names:
        kind: K8sProtectedNamespace
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sprotectednamespace
      violation[{"msg": msg}] {
        input.review.operation == "DELETE"
        input.review.object.metadata.labels.protected == "true"
        msg := sprintf("namespace %v is protected", [input.review.object.metadata.name])
      }
`
	protectConstraint = `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sProtectedNamespace
metadata:
  name: protect-namespaces
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["Namespace"]
    namespaces: ["acc-*"]
`
	execTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sdenyexec
spec:
  crd:
    spec:
      names:
        kind: K8sDenyExec
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sdenyexec
      violation[{"msg": msg}] {
        input.review.operation == "CONNECT"
        msg := sprintf("%v into pod %v is not allowed", [input.review.subResource, input.review.name])
      }
`
	execConstraint = `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sDenyExec
metadata:
  name: deny-exec
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["PodExecOptions", "PodAttachOptions"]
    namespaces: ["acc-exec"]
`
	configMapTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sdenyconfigmaps
spec:
  crd:
    spec:
      names:
        kind: K8sDenyConfigMaps
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sdenyconfigmaps
      violation[{"msg": "no ConfigMaps here"}] {
        input.review.object.kind == "ConfigMap"
      }
`
	configMapConstraint = `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sDenyConfigMaps
metadata:
  name: no-configmaps
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["ConfigMap"]
    namespaces: ["acc-*"]
`
)

// teamTemplate refuses ConfigMaps and names the team of their namespace,
// read from input.review.namespaceObject.
const (
	teamTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8steamconfigmaps
spec:
  crd:
    spec:
      names:
        kind: K8sTeamConfigMaps
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8steamconfigmaps
      violation[{"msg": msg}] {
        msg := sprintf("no ConfigMaps in the namespaces of team %v", [input.review.namespaceObject.metadata.labels.team])
      }
`
	teamConstraint = `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sTeamConfigMaps
metadata:
  name: team-configmaps
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["ConfigMap"]
    namespaceSelector:
      matchLabels:
        strict: "yes"
`
)

// TestAcceptance walks the table through kube-apiserver, with the
// webhook registered by URL and its CA bundle.
func TestAcceptance(t *testing.T) {
	needEnv(t)
	ctx := t.Context()
	wc, warned := warningClient(t)
	createPolicy(t, labelTemplate)
	constraint := createPolicy(t, labelConstraint)

	t.Run("deny refuses a namespace without the label", func(t *testing.T) {
		// The constraint reaches the engine asynchronously: poll with a
		// dry run, which goes through the webhook but stores nothing.
		eventually(t, "the deny constraint to refuse", func(ctx context.Context) error {
			err := wc.Create(ctx, namespace("acc-nolabel", nil), client.DryRunAll)
			return wantDenied(err, "[ns-must-have-test] namespace acc-nolabel must carry the label test")
		})
		err := wc.Create(ctx, namespace("acc-nolabel", nil))
		if err := wantDenied(err, "[ns-must-have-test] namespace acc-nolabel must carry the label test"); err != nil {
			t.Fatal(err)
		}
		if !apierrors.IsForbidden(err) {
			t.Errorf("error is not 403 Forbidden: %v", err)
		}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "acc-nolabel"}, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
			t.Errorf("refused namespace was stored: Get = %v", err)
		}
	})

	t.Run("the label lets it in", func(t *testing.T) {
		mustCreate(t, wc, namespace("acc-labeled", map[string]string{"test": "yes"}))
		if w := warned.take(); len(w) > 0 {
			t.Errorf("warnings: %q", w)
		}
	})

	t.Run("warn creates it with the warning shown", func(t *testing.T) {
		setAction(t, constraint, "warn")
		want := "[ns-must-have-test] namespace acc-warned must carry the label test"
		eventually(t, "the warn constraint", func(ctx context.Context) error {
			warned.take()
			if err := wc.Create(ctx, namespace("acc-warned", nil), client.DryRunAll); err != nil {
				return err
			}
			return wantWarning(warned.take(), want)
		})
		mustCreate(t, wc, namespace("acc-warned", nil))
		if err := wantWarning(warned.take(), want); err != nil {
			t.Error(err)
		}
	})

	t.Run("dryrun creates it with nothing shown", func(t *testing.T) {
		setAction(t, constraint, "dryrun")
		eventually(t, "the dryrun constraint", func(ctx context.Context) error {
			warned.take()
			if err := wc.Create(ctx, namespace("acc-dryrun", nil), client.DryRunAll); err != nil {
				return err
			}
			if w := warned.take(); len(w) > 0 {
				return fmt.Errorf("warnings %q", w)
			}
			return nil
		})
		mustCreate(t, wc, namespace("acc-dryrun", nil))
		if w := warned.take(); len(w) > 0 {
			t.Errorf("warnings: %q", w)
		}
		if !hook.logs.Contains("denied admission: namespace acc-dryrun must carry the label test", `"constraint_action": "dryrun"`, `"constraint_name": "ns-must-have-test"`, `"resource_name": "acc-dryrun"`) {
			t.Error("the dryrun violation was not logged")
		}
		setAction(t, constraint, "deny")
		eventually(t, "the deny constraint again", func(ctx context.Context) error {
			return wantDenied(wc.Create(ctx, namespace("acc-nolabel", nil), client.DryRunAll), "[ns-must-have-test]")
		})
	})

	t.Run("an exempt namespace is never judged", func(t *testing.T) {
		createPolicy(t, configMapTemplate)
		createPolicy(t, configMapConstraint)
		// Exempt: created without the label, and with the ignore label.
		mustCreate(t, wc, namespace(exemptNamespace, map[string]string{"admission.gatekeeper.sh/ignore": "yes"}))
		mustCreate(t, wc, namespace("acc-protected", map[string]string{"test": "yes"}))
		eventually(t, "ConfigMaps to be refused in acc-protected", func(ctx context.Context) error {
			return wantDenied(wc.Create(ctx, configMap("acc-protected"), client.DryRunAll), "[no-configmaps] no ConfigMaps here")
		})
		mustCreate(t, wc, configMap(exemptNamespace))
		// Only exempt namespaces may carry the ignore label.
		err := wc.Create(ctx, namespace("acc-sneaky", map[string]string{"test": "yes", "admission.gatekeeper.sh/ignore": "yes"}))
		if err := wantDenied(err, "Only exempt namespace can have the admission.gatekeeper.sh/ignore label"); err != nil {
			t.Error(err)
		}
	})

	t.Run("DELETE is judged on oldObject", func(t *testing.T) {
		createPolicy(t, protectTemplate)
		createPolicy(t, protectConstraint)
		mustCreate(t, wc, namespace("acc-keep", map[string]string{"test": "yes", "protected": "true"}))
		mustCreate(t, wc, namespace("acc-drop", map[string]string{"test": "yes"}))
		eventually(t, "deleting a protected namespace to be refused", func(ctx context.Context) error {
			err := wc.Delete(ctx, namespace("acc-keep", nil), client.DryRunAll)
			return wantDenied(err, "[protect-namespaces] namespace acc-keep is protected")
		})
		if err := wc.Delete(ctx, namespace("acc-drop", nil)); err != nil {
			t.Errorf("deleting an unprotected namespace: %v", err)
		}
	})

	t.Run("CONNECT pods/exec is refused before reaching a node", func(t *testing.T) {
		createPolicy(t, execTemplate)
		createPolicy(t, execConstraint)
		mustCreate(t, wc, namespace("acc-exec", map[string]string{"test": "yes"}))
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "shell", Namespace: "acc-exec"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}
		mustCreate(t, wc, pod)
		cs, err := kubernetes.NewForConfig(env.Config)
		if err != nil {
			t.Fatal(err)
		}
		exec := func(ctx context.Context, sub string) error {
			return cs.CoreV1().RESTClient().Post().Namespace("acc-exec").Resource("pods").Name("shell").
				SubResource(sub).Param("container", "c").Param("command", "ls").Param("stdout", "true").
				Do(ctx).Error()
		}
		eventually(t, "exec to be refused by the webhook", func(ctx context.Context) error {
			return wantDenied(exec(ctx, "exec"), "[deny-exec] exec into pod shell is not allowed")
		})
		if err := wantDenied(exec(ctx, "attach"), "[deny-exec] attach into pod shell is not allowed"); err != nil {
			t.Error(err)
		}
		// Elsewhere the API server gets past admission and fails on the
		// missing node: proof that the refusal above came first.
		mustCreate(t, wc, namespace("exec-allowed", nil))
		pod2 := pod.DeepCopy()
		pod2.Namespace, pod2.ResourceVersion = "exec-allowed", ""
		mustCreate(t, wc, pod2)
		err = cs.CoreV1().RESTClient().Post().Namespace("exec-allowed").Resource("pods").Name("shell").
			SubResource("exec").Param("container", "c").Param("command", "ls").Param("stdout", "true").Do(ctx).Error()
		if err == nil || strings.Contains(err.Error(), "admission webhook") {
			t.Errorf("exec in an unprotected namespace: %v, want a node error", err)
		}
	})

	t.Run("namespaceSelector and namespaceObject see the request's Namespace", func(t *testing.T) {
		createPolicy(t, teamTemplate)
		createPolicy(t, teamConstraint)
		// Created just now: the webhook may find it in its cache or, if
		// the cache is behind, through the API.
		mustCreate(t, wc, namespace("team-strict", map[string]string{"strict": "yes", "team": "payments"}))
		mustCreate(t, wc, namespace("team-lax", map[string]string{"team": "search"}))
		eventually(t, "ConfigMaps to be refused in team-strict", func(ctx context.Context) error {
			return wantDenied(wc.Create(ctx, configMap("team-strict"), client.DryRunAll), "[team-configmaps] no ConfigMaps in the namespaces of team payments")
		})
		if err := wc.Create(ctx, configMap("team-lax"), client.DryRunAll); err != nil {
			t.Errorf("ConfigMap in a namespace the selector does not match: %v", err)
		}
	})

	t.Run("decisions are counted in controller-runtime's registry", func(t *testing.T) {
		for _, d := range []string{"allow", "deny", "warn"} {
			if counter(t, ctrlmetrics.Registry, d) == 0 {
				t.Errorf("no %s counted", d)
			}
		}
	})

	t.Run("a template with broken Rego is refused at apply time", func(t *testing.T) {
		broken := testenv.Parse(t, `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sbroken
spec:
  crd:
    spec:
      names:
        kind: K8sBroken
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sbroken
      violation[{"msg": msg}] {
        msg := concat("", [input.review.object.metadata.name
      }
`)
		err := env.Client.Create(ctx, broken)
		if err == nil {
			_ = env.Client.Delete(ctx, broken)
			t.Fatal("broken template was created")
		}
		t.Logf("kubectl would show: %v", err)
		for _, want := range []string{`admission webhook "check-policy.gatekeeper.sh" denied the request`, "spec.targets[0].rego", "line 4", "rego_parse_error"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
		if !apierrors.IsInvalid(err) {
			t.Errorf("error is not 422 Invalid: %v", err)
		}
	})

	t.Run("a constraint with an unknown enforcement action is refused", func(t *testing.T) {
		bad := testenv.Parse(t, strings.Replace(labelConstraint, "enforcementAction: deny", "enforcementAction: block", 1))
		bad.SetName("bad-action")
		err := env.Client.Create(ctx, bad)
		if err == nil {
			_ = env.Client.Delete(ctx, bad)
			t.Fatal("constraint with enforcementAction block was created")
		}
		t.Logf("kubectl would show: %v", err)
		for _, want := range []string{"check-policy.gatekeeper.sh", "spec.enforcementAction", `"block"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	})
}

// TestServiceAccountAllowed: the manager's own requests are never judged.
func TestServiceAccountAllowed(t *testing.T) {
	needEnv(t)
	ctx := t.Context()
	// A kind of its own: deleted templates leave their CRDs terminating
	// for a while.
	rename := strings.NewReplacer("k8srequiredtestlabel", "k8ssatestlabel", "K8sRequiredTestLabel", "K8sSATestLabel", "ns-must-have-test", "sa-test")
	createPolicy(t, rename.Replace(labelTemplate))
	createPolicy(t, rename.Replace(labelConstraint))
	eventually(t, "the constraint to refuse", func(ctx context.Context) error {
		return wantDenied(env.Client.Create(ctx, namespace("acc-sa", nil), client.DryRunAll), "[sa-test]")
	})
	user := "system:serviceaccount:" + hook.opts.Namespace + ":" + hook.opts.ServiceAccount
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "webhook-e2e-sa"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	mustCreate(t, env.Client, binding)
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	sa, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := sa.Create(ctx, namespace("acc-sa", nil), client.DryRunAll); err != nil {
		t.Errorf("the manager's service account was refused: %v", err)
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func configMap(ns string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: ns}, Data: map[string]string{"a": "b"}}
}

// mustCreate creates obj and deletes it when the test ends.
func mustCreate(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(t.Context(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
}

// wantDenied checks that err is the webhook's refusal holding want.
func wantDenied(err error, want string) error {
	if err == nil {
		return errors.New("allowed, want refused")
	}
	if !strings.Contains(err.Error(), "admission webhook") || !strings.Contains(err.Error(), want) {
		return fmt.Errorf("error %w is not the webhook's refusal with %q", err, want)
	}
	return nil
}

func wantWarning(got []string, want string) error {
	if slices.Contains(got, want) {
		return nil
	}
	return fmt.Errorf("warnings %q, want %q", got, want)
}

// setAction changes a constraint's enforcement action.
func setAction(t *testing.T, u interface{ GetName() string }, action string) {
	t.Helper()
	c := testenv.Parse(t, labelConstraint)
	c.SetName(u.GetName())
	patch := []byte(fmt.Sprintf(`{"spec":{"enforcementAction":%q}}`, action))
	if err := env.Client.Patch(t.Context(), c, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatalf("setting enforcementAction %s: %v", action, err)
	}
}
