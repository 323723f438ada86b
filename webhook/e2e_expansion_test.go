package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// The expansion policies: Pods of expNamespace need an owner label, and
// Gatekeeper's example ExpansionTemplates (website/docs/expansion.md,
// test/expansion).
const (
	expNamespace = "exp-webhook"

	podOwnerTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8spodowner
spec:
  crd:
    spec:
      names:
        kind: K8sPodOwner
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8spodowner
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels.owner
        msg := sprintf("%v %v must have an owner label", [input.review.kind.kind, input.review.object.metadata.name])
      }
`
	podOwnerConstraint = `
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sPodOwner
metadata:
  name: pods-need-owner
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["Pod"]
    namespaces: ["` + expNamespace + `"]
`
	expandDeployments = `
apiVersion: expansion.gatekeeper.sh/v1alpha1
kind: ExpansionTemplate
metadata:
  name: expand-deployments
spec:
  applyTo:
  - groups: ["apps"]
    kinds: ["DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"]
    versions: ["v1"]
  templateSource: "spec.template"
  generatedGVK:
    kind: "Pod"
    group: ""
    version: "v1"
`
	expandCronJobs = `
apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata:
  name: expand-cronjobs
spec:
  applyTo:
  - groups: ["batch"]
    kinds: ["CronJob"]
    versions: ["v1"]
  templateSource: "spec.jobTemplate"
  generatedGVK: {kind: Job, group: batch, version: v1}
`
	expandJobs = `
apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata:
  name: expand-jobs
spec:
  applyTo:
  - groups: ["batch"]
    kinds: ["Job"]
    versions: ["v1"]
  templateSource: "spec.template"
  generatedGVK: {kind: Pod, group: "", version: v1}
`
	// expandPods closes the cycle CronJob -> Job -> Pod -> CronJob.
	expandPods = `
apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata:
  name: expand-pods
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  templateSource: "spec.foo"
  generatedGVK: {kind: CronJob, group: batch, version: v1}
`
)

func ownerDeployment(t *testing.T, name string, podLabels string) *unstructured.Unstructured {
	return testenv.Parse(t, fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  namespace: %s
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web%s}
    spec:
      containers: [{name: nginx, image: nginx}]
`, name, expNamespace, podLabels))
}

func ownerPod(t *testing.T, name string, labels string) *unstructured.Unstructured {
	return testenv.Parse(t, fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels: {app: web%s}
spec:
  containers: [{name: nginx, image: nginx}]
`, name, expNamespace, labels))
}

const cronJob = `
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  namespace: ` + expNamespace + `
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: run, image: busybox}]
`

// expansionStatus returns the error messages of this replica's byPod
// entry of an ExpansionTemplate, and whether the entry is there for the
// template's current UID and generation.
func expansionStatus(ctx context.Context, name string) (errs []string, loaded bool, err error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("expansion.gatekeeper.sh/v1beta1")
	u.SetKind("ExpansionTemplate")
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
		return nil, false, err
	}
	byPod, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
	for _, e := range byPod {
		m, _ := e.(map[string]any)
		if m["id"] != "webhook-e2e" || m["templateUID"] != string(u.GetUID()) || fmt.Sprint(m["observedGeneration"]) != fmt.Sprint(u.GetGeneration()) {
			continue
		}
		ops, _ := m["operations"].([]any)
		if len(ops) == 0 {
			return nil, false, fmt.Errorf("byPod entry without operations: %v", m)
		}
		list, _ := m["errors"].([]any)
		for _, x := range list {
			em, _ := x.(map[string]any)
			errs = append(errs, fmt.Sprint(em["message"]))
		}
		return errs, true, nil
	}
	return nil, false, nil
}

// TestExpansionE2E: through the real kube-apiserver, the webhook refuses a
// Deployment for what its Pod template would violate, with Gatekeeper's
// "[Implied by <template>]", while Pods keep their own policy; the
// template's enforcementAction overrides; a CronJob is judged by its Job's
// Pod; invalid templates are refused at apply time; a cycle shows in the
// status of its templates and stops them until it is broken.
func TestExpansionE2E(t *testing.T) {
	needEnv(t)
	ctx := t.Context()
	mustCreate(t, env.Client, namespace(expNamespace, nil))
	createPolicy(t, podOwnerTemplate)
	createPolicy(t, podOwnerConstraint)
	wc, warns := warningClient(t)
	eventually(t, "the constraint to refuse a Pod without owner", func(ctx context.Context) error {
		return wantDenied(wc.Create(ctx, ownerPod(t, "lonely", ""), client.DryRunAll), "[pods-need-owner] Pod lonely must have an owner label")
	})
	if err := wc.Create(ctx, ownerDeployment(t, "web", ""), client.DryRunAll); err != nil {
		t.Fatalf("without an ExpansionTemplate the Deployment is refused: %v", err)
	}

	createPolicy(t, expandDeployments)
	eventually(t, "expand-deployments to be loaded", func(ctx context.Context) error {
		errs, loaded, err := expansionStatus(ctx, "expand-deployments")
		if err == nil && (!loaded || len(errs) > 0) {
			err = fmt.Errorf("loaded %v, errors %v", loaded, errs)
		}
		return err
	})
	t.Run("deployment refused for its pod", func(t *testing.T) {
		err := wc.Create(ctx, ownerDeployment(t, "web", ""), client.DryRunAll)
		if err := wantDenied(err, "[pods-need-owner] [Implied by expand-deployments] Pod web-pod must have an owner label"); err != nil {
			t.Fatal(err)
		}
		if !apierrors.IsForbidden(err) {
			t.Errorf("error %v is not 403 Forbidden", err)
		}
		if err := wc.Create(ctx, ownerDeployment(t, "owned", ", owner: alice"), client.DryRunAll); err != nil {
			t.Errorf("a Deployment whose Pods have an owner was refused: %v", err)
		}
	})
	t.Run("pods keep their own policy", func(t *testing.T) {
		if err := wantDenied(wc.Create(ctx, ownerPod(t, "lonely", ""), client.DryRunAll), "[pods-need-owner] Pod lonely must have an owner label"); err != nil {
			t.Error(err)
		}
		if err := wc.Create(ctx, ownerPod(t, "owned", ", owner: alice"), client.DryRunAll); err != nil {
			t.Errorf("a Pod with an owner was refused: %v", err)
		}
	})
	t.Run("invalid template refused at apply", func(t *testing.T) {
		bad := testenv.Parse(t, strings.Replace(expandPods, `templateSource: "spec.foo"`, `templateSource: ""`, 1))
		bad.SetName("expand-nothing")
		err := env.Client.Create(ctx, bad, client.DryRunAll)
		if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "ExpansionTemplate expand-nothing has empty source field") {
			t.Fatalf("creating an ExpansionTemplate without templateSource: %v, want 422 with Gatekeeper's message", err)
		}
		// kubectl prints the cause: the field and the message.
		se, ok := errors.AsType[*apierrors.StatusError](err)
		if !ok || se.ErrStatus.Details == nil || len(se.ErrStatus.Details.Causes) != 1 || se.ErrStatus.Details.Causes[0].Field != "spec.templateSource" {
			t.Errorf("refusal %#v, want one cause on spec.templateSource", err)
		}
	})
	// Created by the test, not a subtest: the cycle subtest needs them.
	createPolicy(t, expandCronJobs)
	createPolicy(t, expandJobs)
	t.Run("cronjob judged by its job's pod", func(t *testing.T) {
		eventually(t, "a CronJob to be refused for its Job's Pod", func(ctx context.Context) error {
			return wantDenied(wc.Create(ctx, testenv.Parse(t, cronJob), client.DryRunAll), "[pods-need-owner] [Implied by expand-jobs] Pod nightly-job-pod must have an owner label")
		})
	})
	t.Run("cycle", func(t *testing.T) {
		p := createPolicy(t, expandPods)
		for _, name := range []string{"expand-pods", "expand-cronjobs", "expand-jobs"} {
			eventually(t, name+" to report the cycle", func(ctx context.Context) error {
				errs, loaded, err := expansionStatus(ctx, name)
				if err != nil {
					return err
				}
				if !loaded || len(errs) != 1 || !strings.HasPrefix(errs[0], "template forms expansion cycle: expand-cronjobs, expand-jobs, expand-pods") {
					return fmt.Errorf("loaded %v, errors %q", loaded, errs)
				}
				return nil
			})
		}
		if err := wc.Create(ctx, testenv.Parse(t, cronJob), client.DryRunAll); err != nil {
			t.Errorf("templates in a cycle still expanded: %v", err)
		}
		// expand-deployments is active, the three of the cycle in error.
		if active, errs := expansionGauge(t, "active"), expansionGauge(t, "error"); active < 1 || errs < 3 {
			t.Errorf("gatekeeper_expansion_templates: active %v, error %v; want at least 1 and 3", active, errs)
		}
		if err := env.Client.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
		eventually(t, "expand-cronjobs to recover once the cycle is broken", func(ctx context.Context) error {
			errs, loaded, err := expansionStatus(ctx, "expand-cronjobs")
			if err == nil && (!loaded || len(errs) > 0) {
				err = fmt.Errorf("loaded %v, errors %q", loaded, errs)
			}
			return err
		})
		if err := wantDenied(wc.Create(ctx, testenv.Parse(t, cronJob), client.DryRunAll), "[Implied by expand-jobs]"); err != nil {
			t.Error(err)
		}
	})
	t.Run("enforcementAction override", func(t *testing.T) {
		u := testenv.Parse(t, expandDeployments)
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(u.Object, "warn", "spec", "enforcementAction"); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Update(ctx, u); err != nil {
			t.Fatal(err)
		}
		want := "[pods-need-owner] [Implied by expand-deployments] Pod web-pod must have an owner label"
		eventually(t, "the Deployment to be allowed with a warning", func(ctx context.Context) error {
			warns.take()
			if err := wc.Create(ctx, ownerDeployment(t, "web", ""), client.DryRunAll); err != nil {
				return err
			}
			return wantWarning(warns.take(), want)
		})
	})
	if t.Failed() {
		t.Logf("manager logs:\n%s", hook.logs.String())
	}
}

// expansionGauge reads gatekeeper_expansion_templates{status}.
func expansionGauge(t *testing.T, status string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "gatekeeper_expansion_templates" {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "status") == status {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatal("no gatekeeper_expansion_templates")
	return 0
}
