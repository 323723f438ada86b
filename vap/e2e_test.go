package vap_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/vap"
)

// labelsTemplate is a CEL template of kind that requires the labels its
// constraints list.
func labelsTemplate(name, kind, extraSource string) string {
	return fmt.Sprintf(`apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: %s
spec:
  crd:
    spec:
      names:
        kind: %s
      validation:
        openAPIV3Schema:
          type: object
          properties:
            labels:
              type: array
              items:
                type: string
  targets:
  - target: admission.k8s.gatekeeper.sh
    code:
    - engine: K8sNativeValidation
      source:
%s        validations:
        - expression: "variables.params.labels.all(l, has(variables.anyObject.metadata.labels) && l in variables.anyObject.metadata.labels)"
          messageExpression: "'missing required labels: ' + variables.params.labels.join(', ')"
`, name, kind, extraSource)
}

// labelsConstraint is a constraint of kind on the ConfigMaps of the
// namespaces ns (a YAML list) that requires label; action is its
// spec.enforcementAction, or with scoped its YAML after the key.
func labelsConstraint(kind, name, ns, label, action string) string {
	return fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: %s
metadata:
  name: %s
spec:
  enforcementAction: %s
  match:
    kinds:
    - apiGroups: [""]
      kinds: ["ConfigMap"]
    namespaces: %s
  parameters:
    labels: [%q]
`, kind, name, action, ns, label)
}

// TestPolicyEnforcedWithoutWebhook applies a CEL template and constraints
// of each enforcement action with Gatekeeper's default flags, and no
// webhook registered: the API server itself refuses a violating object
// with the template's message (deny), warns (warn) or only audits
// (dryrun). The objects are Gatekeeper's, written only on change, and go
// with their template and constraints.
func TestPolicyEnforcedWithoutWebhook(t *testing.T) {
	needEnv(t)
	const (
		podID    = "pod-vap"
		template = "vaplabels"
		kind     = "VapLabels"
	)
	exempt := func(o *manager.Options) { o.Webhook.ExemptNamespaces = []string{"vap-exempt"} }
	_, stop := startManager(t, podID, exempt)
	testenv.EnsureNamespaces(t, env.Client, "vap-deny", "vap-warn", "vap-dryrun", "vap-exempt", "vap-excluded", manager.DefaultNamespace)
	objects.Apply(t, labelsTemplate(template, kind, ""))

	// The policy.
	st := policyState(t, template, podID, vap.StateGenerated)
	if st["warning"] != nil {
		t.Errorf("vapGenerationStatus warning %v", st["warning"])
	}
	policy, err := getPolicy(t.Context(), "gatekeeper-"+template)
	if err != nil {
		t.Fatal(err)
	}
	checkPolicy(t, policy, template, kind)

	// The bindings, after the CRD is 30 s old.
	deny := objects.Apply(t, labelsConstraint(kind, "deny-owner", `["vap-deny", "vap-exempt", "vap-excluded", "portcullis-system"]`, "owner", "deny"))[0]
	objects.Apply(t, labelsConstraint(kind, "warn-owner", `["vap-warn"]`, "owner", "warn"))
	objects.Apply(t, labelsConstraint(kind, "dryrun-owner", `["vap-dryrun"]`, "owner", "dryrun"))
	want := map[string]admissionregistrationv1.ValidationAction{
		"deny-owner": admissionregistrationv1.Deny, "warn-owner": admissionregistrationv1.Warn, "dryrun-owner": admissionregistrationv1.Audit,
	}
	for name, action := range want {
		s := bindingState(t, kind, name, podID, vap.StateGenerated)
		if s["message"] != nil {
			t.Errorf("%s: enforcementPointsStatus message %v", name, s["message"])
		}
		b, err := getBinding(t.Context(), "gatekeeper-vaplabels-"+name)
		if err != nil {
			t.Fatal(err)
		}
		checkBinding(t, b, kind, name, action)
	}

	// No webhook is registered: the verdicts are the API server's own.
	webhooks := &admissionregistrationv1.ValidatingWebhookConfigurationList{}
	if err := env.Client.List(t.Context(), webhooks); err != nil || len(webhooks.Items) > 0 {
		t.Fatalf("webhook configurations %v (%v), want none", webhooks.Items, err)
	}
	wc := newWarningClient(t)
	eventually(t, "the API server to refuse an unlabeled ConfigMap", func(ctx context.Context) error {
		err := wc.Create(ctx, configMap("vap-deny", "bad", nil), client.DryRunAll)
		if err == nil {
			return errors.New("created")
		}
		if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "missing required labels: owner") ||
			!strings.Contains(err.Error(), "gatekeeper-vaplabels-deny-owner") {
			return fmt.Errorf("refused otherwise: %w", err)
		}
		return nil
	})
	if err := wc.Create(t.Context(), configMap("vap-deny", "good", map[string]string{"owner": "me"}), client.DryRunAll); err != nil {
		t.Errorf("a labeled ConfigMap: %v", err)
	}
	wc.take()
	if err := wc.Create(t.Context(), configMap("vap-warn", "bad", nil), client.DryRunAll); err != nil {
		t.Errorf("warn: refused: %v", err)
	}
	if w := wc.take(); !containsAny(w, "missing required labels: owner") {
		t.Errorf("warn: warnings %q, want the template's message", w)
	}
	if err := wc.Create(t.Context(), configMap("vap-dryrun", "bad", nil), client.DryRunAll); err != nil {
		t.Errorf("dryrun: refused: %v", err)
	}
	if w := wc.take(); containsAny(w, "missing required labels") {
		t.Errorf("dryrun: warnings %q, want none (Audit)", w)
	}

	// Never Portcullis's namespace nor an exempt one; a namespace the
	// Config excludes from the webhook once the Config says so.
	for _, ns := range []string{manager.DefaultNamespace, "vap-exempt"} {
		if err := wc.Create(t.Context(), configMap(ns, "bad", nil), client.DryRunAll); err != nil {
			t.Errorf("%s: refused: %v", ns, err)
		}
	}
	if err := wc.Create(t.Context(), configMap("vap-excluded", "bad", nil), client.DryRunAll); err == nil {
		t.Error("vap-excluded: allowed before the Config excludes it")
	}
	objects.Apply(t, `apiVersion: config.gatekeeper.sh/v1alpha1
kind: Config
metadata:
  name: config
  namespace: portcullis-system
spec:
  match:
  - excludedNamespaces: ["vap-excluded"]
    processes: ["webhook"]
`)
	eventually(t, "the Config's exclusion to reach the policy", func(ctx context.Context) error {
		return wc.Create(ctx, configMap("vap-excluded", "bad", nil), client.DryRunAll)
	})

	checkMetric(t, "gatekeeper_validating_admission_policies", "active", 1)
	checkMetric(t, "gatekeeper_validating_admission_policy_bindings", "active", 3)
	writtenOnlyOnChange(t, template, kind, podID)

	// A restarted manager takes over what an earlier one (Gatekeeper)
	// left, in place.
	stop()
	left := leaveAsGatekeeper(t, template, kind)
	startManager(t, podID, exempt)
	checkAdopted(t, left)

	// Deleting a constraint deletes its binding; the template, its policy.
	objects.Delete(t, deny)
	eventually(t, "the deleted constraint's binding to go", func(ctx context.Context) error {
		return gone(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, "gatekeeper-vaplabels-deny-owner")
	})
	if _, err := getBinding(t.Context(), "gatekeeper-vaplabels-warn-owner"); err != nil {
		t.Errorf("another constraint's binding: %v", err)
	}
	u := testenv.Parse(t, labelsTemplate(template, kind, ""))
	objects.Delete(t, u)
	eventually(t, "the deleted template's policy and bindings to go", func(ctx context.Context) error {
		for _, name := range []string{"gatekeeper-vaplabels-warn-owner", "gatekeeper-vaplabels-dryrun-owner"} {
			if err := gone(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, name); err != nil {
				return err
			}
		}
		return gone(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{}, "gatekeeper-"+template)
	})
}

// checkPolicy holds a generated policy to Gatekeeper's shape.
func checkPolicy(t *testing.T, p *admissionregistrationv1.ValidatingAdmissionPolicy, template, kind string) {
	t.Helper()
	s := p.Spec
	if s.ParamKind == nil || s.ParamKind.APIVersion != "constraints.gatekeeper.sh/v1beta1" || s.ParamKind.Kind != kind {
		t.Errorf("paramKind %+v", s.ParamKind)
	}
	if s.FailurePolicy == nil || *s.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("failurePolicy %v, want Fail", s.FailurePolicy)
	}
	var vars []string
	for _, v := range s.Variables {
		vars = append(vars, v.Name)
	}
	if !slices.Equal(vars, []string{"anyObject", "params"}) {
		t.Errorf("variables %v", vars)
	}
	var conds []string
	for _, c := range s.MatchConditions {
		conds = append(conds, c.Name)
	}
	for _, want := range []string{vap.ConditionExcludedNamespaces, vap.ConditionNamespaces, vap.ConditionName, vap.ConditionKinds, vap.ConditionGlobalExemptedNamespaces} {
		if !slices.Contains(conds, want) {
			t.Errorf("match conditions %v lack %s", conds, want)
		}
	}
	if len(s.Validations) != 1 || !strings.Contains(s.Validations[0].MessageExpression, "missing required labels") {
		t.Errorf("validations %+v", s.Validations)
	}
	mc := s.MatchConstraints
	if mc == nil || len(mc.ResourceRules) != 1 || !slices.Equal(mc.ResourceRules[0].Operations, []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}) {
		t.Errorf("matchConstraints %+v, want the webhook's CREATE and UPDATE", mc)
	}
	if mc != nil && !selectorExcludes(mc.NamespaceSelector, "portcullis-system") {
		t.Errorf("namespaceSelector %+v does not leave out portcullis-system", mc.NamespaceSelector)
	}
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != "ConstraintTemplate" || ref.Name != template {
		t.Errorf("controller %+v, want the template", ref)
	}
	checkManager(t, p.ManagedFields)
}

func selectorExcludes(sel *metav1.LabelSelector, ns string) bool {
	if sel == nil {
		return false
	}
	for _, r := range sel.MatchExpressions {
		if r.Key == "kubernetes.io/metadata.name" && r.Operator == metav1.LabelSelectorOpNotIn && slices.Contains(r.Values, ns) {
			return true
		}
	}
	return false
}

// checkBinding holds a generated binding to Gatekeeper's shape.
func checkBinding(t *testing.T, b *admissionregistrationv1.ValidatingAdmissionPolicyBinding, kind, constraint string, action admissionregistrationv1.ValidationAction) {
	t.Helper()
	s := b.Spec
	if s.PolicyName != "gatekeeper-"+strings.ToLower(kind) {
		t.Errorf("%s: policyName %q", b.Name, s.PolicyName)
	}
	if s.ParamRef == nil || s.ParamRef.Name != constraint || s.ParamRef.ParameterNotFoundAction == nil ||
		*s.ParamRef.ParameterNotFoundAction != admissionregistrationv1.AllowAction {
		t.Errorf("%s: paramRef %+v", b.Name, s.ParamRef)
	}
	if !slices.Equal(s.ValidationActions, []admissionregistrationv1.ValidationAction{action}) {
		t.Errorf("%s: validationActions %v, want [%s]", b.Name, s.ValidationActions, action)
	}
	ref := metav1.GetControllerOf(b)
	if ref == nil || ref.Kind != kind || ref.Name != constraint || ref.APIVersion != "constraints.gatekeeper.sh/v1beta1" {
		t.Errorf("%s: controller %+v, want the constraint", b.Name, ref)
	}
	checkManager(t, b.ManagedFields)
}

func checkManager(t *testing.T, fields []metav1.ManagedFieldsEntry) {
	t.Helper()
	for _, f := range fields {
		if f.Manager != "portcullis" {
			t.Errorf("field manager %q, want portcullis only", f.Manager)
		}
	}
}

// checkMetric waits until the gauge's status series is at least min.
func checkMetric(t *testing.T, name, status string, minimum float64) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s{status=%q} to be at least %v", name, status, minimum), func(context.Context) error {
		m, ok := testenv.FindMetric(t, name, map[string]string{"status": status})
		if !ok {
			return errors.New("no such series")
		}
		if v := m.GetGauge().GetValue(); v < minimum {
			return fmt.Errorf("value %v", v)
		}
		return nil
	})
}

// writtenOnlyOnChange changes the template and a constraint in ways their
// policy and binding do not depend on: once the manager reports the new
// generations, neither object was written again.
func writtenOnlyOnChange(t *testing.T, template, kind, podID string) {
	t.Helper()
	ctx := t.Context()
	p, err := getPolicy(ctx, "gatekeeper-"+template)
	if err != nil {
		t.Fatal(err)
	}
	b, err := getBinding(ctx, "gatekeeper-vaplabels-warn-owner")
	if err != nil {
		t.Fatal(err)
	}
	ct, err := getObject(ctx, "templates.gatekeeper.sh/v1", "ConstraintTemplate", template)
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(ct.Object, "labels required", "spec", "crd", "spec", "validation", "openAPIV3Schema", "description"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Update(ctx, ct); err != nil {
		t.Fatal(err)
	}
	c, err := getObject(ctx, "constraints.gatekeeper.sh/v1beta1", kind, "warn-owner")
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedStringSlice(c.Object, []string{"owner", "team"}, "spec", "parameters", "labels"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	policyState(t, template, podID, vap.StateGenerated)
	eventually(t, "the changed constraint's binding to be reported", func(ctx context.Context) error {
		s, err := bindingStatus(ctx, kind, "warn-owner", podID)
		if err != nil {
			return err
		}
		if s["state"] != vap.StateGenerated || s["observedGeneration"] != c.GetGeneration() {
			return fmt.Errorf("enforcementPointsStatus %v, want generated at generation %d", s, c.GetGeneration())
		}
		return nil
	})
	p2, err := getPolicy(ctx, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := getBinding(ctx, b.Name)
	if err != nil {
		t.Fatal(err)
	}
	if p2.ResourceVersion != p.ResourceVersion || b2.ResourceVersion != b.ResourceVersion {
		t.Errorf("written again without a change: policy %s -> %s, binding %s -> %s",
			p.ResourceVersion, p2.ResourceVersion, b.ResourceVersion, b2.ResourceVersion)
	}
}
