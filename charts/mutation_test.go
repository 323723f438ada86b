package charts_test

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/manager"
)

// mutationValues changes every mutation value of Gatekeeper's chart: the
// mutating webhook configuration's name, policies, timeout, annotations,
// exemptions, selectors, conditions, URL and rules, and the managers'
// --log-mutations and --mutation-annotations.
const mutationValues = `
mutatingWebhookName: policy-mutating
mutatingWebhookFailurePolicy: Fail
mutatingWebhookReinvocationPolicy: IfNeeded
mutatingWebhookTimeoutSeconds: 5
mutatingWebhookAnnotations: {example.com/owner: platform}
mutatingWebhookExemptNamespacesLabels:
  team: [infra]
mutatingWebhookObjectSelector:
  matchLabels: {mutate: "yes"}
mutatingWebhookMatchConditions:
- name: not-leases
  expression: "request.resource.resource != 'leases'"
mutatingWebhookURL: mutate.example.com:9443
mutatingWebhookCustomRules:
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE"]
  resources: ["pods"]
  scope: Namespaced
logMutations: true
mutationAnnotations: true
`

// checkDefaultMutation checks what the defaults give mutation, as
// Gatekeeper's chart does: the MutatingWebhookConfiguration on /v1/mutate
// of the webhook Service, every resource on CREATE and UPDATE with
// Gatekeeper's subresources, the ignore label and the release's namespace
// skipped; --operation=mutation-webhook in the controller-manager,
// --operation=mutation-status in the audit.
func checkDefaultMutation(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	mwc := find(t, objs, "MutatingWebhookConfiguration", "", "portcullis-mutating-webhook-configuration")
	hooks := webhooks(t, mwc)
	if len(hooks) != 1 {
		t.Fatalf("mutating webhooks %v, want mutation.gatekeeper.sh alone", hooks)
	}
	m := hooks["mutation.gatekeeper.sh"]
	if got := fmt.Sprintf("%v %v %v %v", nested2(m, "clientConfig", "service", "path"), m["failurePolicy"], m["reinvocationPolicy"], m["timeoutSeconds"]); got != "/v1/mutate Ignore Never 1" {
		t.Errorf("mutation.gatekeeper.sh: path, failurePolicy, reinvocationPolicy, timeout = %s", got)
	}
	if s := fmt.Sprintf("%v/%v", nested2(m, "clientConfig", "service", "namespace"), nested2(m, "clientConfig", "service", "name")); s != ns+"/portcullis-webhook-service" {
		t.Errorf("mutation.gatekeeper.sh calls %s", s)
	}
	if _, ok := m["clientConfig"].(map[string]any)["caBundle"]; ok {
		t.Errorf("mutation.gatekeeper.sh has a caBundle: the managers write it, as for the validating webhook")
	}
	if sel := fmt.Sprint(nested2(m, "namespaceSelector", "matchExpressions")); sel !=
		"[map[key:admission.gatekeeper.sh/ignore operator:DoesNotExist] map[key:kubernetes.io/metadata.name operator:NotIn values:["+ns+"]]]" {
		t.Errorf("mutation.gatekeeper.sh namespaceSelector %s", sel)
	}
	rules := fmt.Sprint(m["rules"])
	for _, r := range []string{"operations:[CREATE UPDATE]", "pods/ephemeralcontainers", "services/status", "resources:[*", "scope:*"} {
		if !strings.Contains(rules, r) {
			t.Errorf("mutation.gatekeeper.sh rules %s lack %s", rules, r)
		}
	}
	if fmt.Sprint(m["sideEffects"], " ", m["matchPolicy"]) != "None Exact" {
		t.Errorf("mutation.gatekeeper.sh sideEffects %v, matchPolicy %v", m["sideEffects"], m["matchPolicy"])
	}
	for _, f := range []string{"objectSelector", "matchConditions"} {
		if v, ok := m[f]; ok {
			t.Errorf("mutation.gatekeeper.sh %s = %v, want none by default", f, v)
		}
	}
	cm := find(t, objs, "Deployment", ns, "portcullis-controller-manager")
	au := find(t, objs, "Deployment", ns, "portcullis-audit")
	hasArgs(t, cm, true, "--operation=mutation-webhook", "--log-mutations=false", "--mutation-annotations=false",
		"--mutation-timeout-seconds=1", "--mutating-webhook-configuration-name=portcullis-mutating-webhook-configuration")
	hasArgs(t, cm, false, "--operation=mutation-status", "--operation=mutation-controller")
	hasArgs(t, au, true, "--operation=mutation-status", "--mutating-webhook-configuration-name=portcullis-mutating-webhook-configuration")
	hasArgs(t, au, false, "--operation=mutation-webhook", "--operation=mutation-controller")
	for _, prefix := range []string{"--log-mutations", "--mutation-annotations", "--mutation-timeout-seconds"} {
		for _, a := range containerArgs(t, au) {
			if strings.HasPrefix(a, prefix) {
				t.Errorf("audit args have %s: Gatekeeper's chart passes it to the controller-manager only", a)
			}
		}
	}
}

// checkMutation checks that every value of mutationValues reaches the
// mutating webhook configuration or the managers' args.
func checkMutation(t *testing.T, objs []*unstructured.Unstructured) {
	ns := "mutation-system"
	if lookup(objs, "MutatingWebhookConfiguration", "", "portcullis-mutating-webhook-configuration") != nil {
		t.Error("the default MutatingWebhookConfiguration is rendered beside policy-mutating")
	}
	mwc := find(t, objs, "MutatingWebhookConfiguration", "", "policy-mutating")
	if a := mwc.GetAnnotations()["example.com/owner"]; a != "platform" {
		t.Errorf("mutating webhook configuration annotations %v", mwc.GetAnnotations())
	}
	m := webhooks(t, mwc)["mutation.gatekeeper.sh"]
	if m == nil {
		t.Fatalf("no webhook mutation.gatekeeper.sh in %v", mwc.Object["webhooks"])
	}
	if got := fmt.Sprintf("%v %v %v %v", nested2(m, "clientConfig", "url"), m["failurePolicy"], m["reinvocationPolicy"], m["timeoutSeconds"]); got != "https://mutate.example.com:9443/v1/mutate Fail IfNeeded 5" {
		t.Errorf("mutation.gatekeeper.sh: url, failurePolicy, reinvocationPolicy, timeout = %s", got)
	}
	want := "[map[key:admission.gatekeeper.sh/ignore operator:DoesNotExist] " +
		"map[key:kubernetes.io/metadata.name operator:NotIn values:[" + ns + "]] " +
		"map[key:team operator:NotIn values:[infra]]]"
	if sel := fmt.Sprint(nested2(m, "namespaceSelector", "matchExpressions")); sel != want {
		t.Errorf("namespaceSelector %s, want %s", sel, want)
	}
	for field, want := range map[string]string{
		"objectSelector":  "map[matchLabels:map[mutate:yes]]",
		"matchConditions": "[map[expression:request.resource.resource != 'leases' name:not-leases]]",
		"rules":           "[map[apiGroups:[] apiVersions:[v1] operations:[CREATE] resources:[pods] scope:Namespaced]]",
	} {
		if got := fmt.Sprint(m[field]); got != want {
			t.Errorf("mutation.gatekeeper.sh %s = %s, want %s", field, got, want)
		}
	}
	// The validating webhook keeps its own defaults.
	v := webhooks(t, find(t, objs, "ValidatingWebhookConfiguration", "", "portcullis-validating-webhook-configuration"))["validation.gatekeeper.sh"]
	if got := fmt.Sprintf("%v %v", v["failurePolicy"], v["timeoutSeconds"]); got != "Ignore 3" {
		t.Errorf("validation.gatekeeper.sh failurePolicy, timeout = %s: the mutation values leaked", got)
	}
	cm := find(t, objs, "Deployment", ns, "portcullis-controller-manager")
	au := find(t, objs, "Deployment", ns, "portcullis-audit")
	hasArgs(t, cm, true, "--operation=mutation-webhook", "--log-mutations=true", "--mutation-annotations=true",
		"--mutation-timeout-seconds=5", "--mutating-webhook-configuration-name=policy-mutating", "--timeout-seconds=3")
	hasArgs(t, au, true, "--operation=mutation-status", "--mutating-webhook-configuration-name=policy-mutating")
}

// checkMutationOptions checks what the parsed and completed options of a
// container do for mutation, given the values it was rendered with.
func checkMutationOptions(t *testing.T, name string, o *manager.Options, webhook bool, values string) {
	t.Helper()
	enabled := !strings.Contains(values, "disableMutation: true")
	custom := strings.Contains(values, "mutatingWebhookName: policy-mutating")
	if o.Webhook.Mutation != (webhook && enabled) {
		t.Errorf("%s: serves /v1/mutate %t, want %t", name, o.Webhook.Mutation, webhook && enabled)
	}
	wantName, wantTimeout := "portcullis-mutating-webhook-configuration", int32(1)
	if custom {
		wantName, wantTimeout = "policy-mutating", 5
	}
	if o.Webhook.MutatingConfigurationName != wantName {
		t.Errorf("%s: mutating webhook configuration %q, want %q", name, o.Webhook.MutatingConfigurationName, wantName)
	}
	if webhook && enabled && o.Webhook.MutationTimeoutSeconds != wantTimeout {
		t.Errorf("%s: mutation timeout %ds, want %ds", name, o.Webhook.MutationTimeoutSeconds, wantTimeout)
	}
	if got, want := o.Mutation.LogMutations && o.Mutation.Annotations, webhook && custom; got != want {
		t.Errorf("%s: --log-mutations %t, --mutation-annotations %t; want both %t", name, o.Mutation.LogMutations, o.Mutation.Annotations, want)
	}
}
