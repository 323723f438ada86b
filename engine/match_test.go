package engine

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The expectations below follow Gatekeeper's documented match semantics
// (frameworks-notes.md §2, gatekeeper-features.md §1.2): criteria are ANDed,
// an empty match selects everything, and a match error is an autoreject.

type matchOutcome int

const (
	noMatch    matchOutcome = iota // no violation
	matched                        // the always-violate template fired
	autoreject                     // the matcher failed: an "unable to match" result
)

func (o matchOutcome) String() string {
	return [...]string{"no match", "match", "autoreject"}[o]
}

type matchCase struct {
	name  string
	match string // spec.match as YAML; "" means no spec.match at all
	in    ReviewInput
	ep    string // enforcement point; audit when empty
	setup func(t *testing.T, e *Engine)
	want  matchOutcome
}

func objIn(u *unstructured.Unstructured) *Object { return &Object{Object: u} }

func objInNS(u *unstructured.Unstructured, ns *corev1.Namespace) *Object {
	return &Object{Object: u, Namespace: ns}
}

func objInSource(u *unstructured.Unstructured, source string) *Object {
	return &Object{Object: u, Source: source}
}

// runMatchCases adds one always-violate constraint with each case's match
// to a fresh engine and checks whether the review yields a violation.
func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	ct := newTemplate(t, alwaysKind, alwaysViolateRego)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Options{}, ct)
			spec := ""
			if tc.match != "" {
				spec = "match: " + tc.match
			}
			mustAddConstraint(t, e, newConstraint(t, alwaysKind, "c", spec))
			if tc.setup != nil {
				tc.setup(t, e)
			}
			ep := tc.ep
			if ep == "" {
				ep = EnforcementPointAudit
			}
			vs := mustReview(t, e, tc.in, ep)
			got := noMatch
			switch {
			case len(vs) == 0:
			case len(vs) == 1 && vs[0].Message == "bad":
				got = matched
			case len(vs) == 1 && strings.Contains(vs[0].Message, "unable to match"):
				got = autoreject
			default:
				t.Fatalf("unexpected violations: %q", messages(vs))
			}
			if got != tc.want {
				t.Fatalf("got %v (%q), want %v", got, messages(vs), tc.want)
			}
		})
	}
}

func TestMatchKinds(t *testing.T) {
	cm := newObj("v1", "ConfigMap", "default", "cm", nil)
	fooPod := newObj("foo.example.com/v1", "Pod", "default", "p", nil)
	twoEntries := "{kinds: [{apiGroups: [apps], kinds: [Deployment]}, {apiGroups: [''], kinds: [Pod]}]}"
	runMatchCases(t, []matchCase{
		{name: "no match selects all", in: objIn(cm), want: matched},
		{name: "empty match selects all", match: "{}", in: objIn(cm), want: matched},
		{name: "empty kinds list selects all", match: "{kinds: []}", in: objIn(cm), want: matched},
		{name: "empty kinds entry selects all", match: "{kinds: [{}]}", in: objIn(deployment("default", "d", nil)), want: matched},
		{name: "core Pod matches Pod", match: "{kinds: [{apiGroups: [''], kinds: [Pod]}]}", in: objIn(pod("default", "p", nil)), want: matched},
		{name: "core Pod does not match Deployment", match: "{kinds: [{apiGroups: [''], kinds: [Pod]}]}", in: objIn(deployment("default", "d", nil)), want: noMatch},
		{name: "core Pod does not match Pod of another group", match: "{kinds: [{apiGroups: [''], kinds: [Pod]}]}", in: objIn(fooPod), want: noMatch},
		{name: "apps Deployment matches Deployment", match: "{kinds: [{apiGroups: [apps], kinds: [Deployment]}]}", in: objIn(deployment("default", "d", nil)), want: matched},
		{name: "apps Deployment does not match Pod", match: "{kinds: [{apiGroups: [apps], kinds: [Deployment]}]}", in: objIn(pod("default", "p", nil)), want: noMatch},
		{name: "group must match too", match: "{kinds: [{apiGroups: [apps], kinds: [Pod]}]}", in: objIn(pod("default", "p", nil)), want: noMatch},
		{name: "star kinds and groups", match: "{kinds: [{apiGroups: ['*'], kinds: ['*']}]}", in: objIn(cm), want: matched},
		{name: "star group", match: "{kinds: [{apiGroups: ['*'], kinds: [Pod]}]}", in: objIn(fooPod), want: matched},
		{name: "star kind", match: "{kinds: [{apiGroups: [apps], kinds: ['*']}]}", in: objIn(deployment("default", "d", nil)), want: matched},
		{name: "star kind wrong group", match: "{kinds: [{apiGroups: [apps], kinds: ['*']}]}", in: objIn(cm), want: noMatch},
		{name: "no apiGroups means any group", match: "{kinds: [{kinds: [Pod]}]}", in: objIn(fooPod), want: matched},
		{name: "no kinds means any kind of the group", match: "{kinds: [{apiGroups: ['']}]}", in: objIn(cm), want: matched},
		{name: "no kinds means any kind of the group, other group", match: "{kinds: [{apiGroups: ['']}]}", in: objIn(deployment("default", "d", nil)), want: noMatch},
		{name: "entries are ORed: first", match: twoEntries, in: objIn(deployment("default", "d", nil)), want: matched},
		{name: "entries are ORed: second", match: twoEntries, in: objIn(pod("default", "p", nil)), want: matched},
		{name: "entries are ORed: neither", match: twoEntries, in: objIn(cm), want: noMatch},
		{name: "kind is case sensitive", match: "{kinds: [{apiGroups: [''], kinds: [pod]}]}", in: objIn(pod("default", "p", nil)), want: noMatch},
	})
}

func TestMatchScope(t *testing.T) {
	p := pod("default", "p", nil)
	cr := clusterRole("admin")
	ns := namespaceU("prod", nil)
	nsReq := &Admission{Request: request(t, admissionv1.Create, ns, nil)}
	runMatchCases(t, []matchCase{
		{name: "Cluster: cluster-scoped object", match: "{scope: Cluster}", in: objIn(cr), want: matched},
		{name: "Cluster: Namespace counts as cluster-scoped", match: "{scope: Cluster}", in: objIn(ns), want: matched},
		{name: "Cluster: Namespace admission (request names itself)", match: "{scope: Cluster}", in: nsReq, ep: EnforcementPointWebhook, want: matched},
		{name: "Cluster: namespaced object", match: "{scope: Cluster}", in: objIn(p), want: noMatch},
		{name: "Cluster: namespaced object with its Namespace", match: "{scope: Cluster}", in: objInNS(p, namespace("default", nil)), want: noMatch},
		{name: "Namespaced: namespaced object", match: "{scope: Namespaced}", in: objIn(p), want: matched},
		{name: "Namespaced: cluster-scoped object", match: "{scope: Namespaced}", in: objIn(cr), want: noMatch},
		{name: "Namespaced: Namespace", match: "{scope: Namespaced}", in: objIn(ns), want: noMatch},
		{name: "Namespaced: Namespace admission", match: "{scope: Namespaced}", in: nsReq, ep: EnforcementPointWebhook, want: noMatch},
		{name: "star: namespaced", match: "{scope: '*'}", in: objIn(p), want: matched},
		{name: "star: cluster-scoped", match: "{scope: '*'}", in: objIn(cr), want: matched},
		{name: "star: Namespace", match: "{scope: '*'}", in: objIn(ns), want: matched},
		{name: "typo matches all: namespaced", match: "{scope: cluster}", in: objIn(p), want: matched},
		{name: "typo matches all: cluster-scoped", match: "{scope: namespaced}", in: objIn(cr), want: matched},
		{name: "empty scope matches all", match: "{scope: ''}", in: objIn(cr), want: matched},
	})
}

func TestMatchNamespaces(t *testing.T) {
	inNS := func(ns string) *Object { return objIn(pod(ns, "p", nil)) }
	runMatchCases(t, []matchCase{
		// namespaces
		{name: "exact in", match: "{namespaces: [default]}", in: inNS("default"), want: matched},
		{name: "exact out", match: "{namespaces: [default]}", in: inNS("prod"), want: noMatch},
		{name: "list", match: "{namespaces: [a, b]}", in: inNS("b"), want: matched},
		{name: "prefix in", match: "{namespaces: ['kube-*']}", in: inNS("kube-system"), want: matched},
		{name: "prefix in 2", match: "{namespaces: ['kube-*']}", in: inNS("kube-public"), want: matched},
		{name: "prefix out", match: "{namespaces: ['kube-*']}", in: inNS("default"), want: noMatch},
		{name: "suffix in", match: "{namespaces: ['*-system']}", in: inNS("gatekeeper-system"), want: matched},
		{name: "suffix out", match: "{namespaces: ['*-system']}", in: inNS("system-x"), want: noMatch},
		{name: "contains in", match: "{namespaces: ['*ub*']}", in: inNS("kube-system"), want: matched},
		{name: "contains out", match: "{namespaces: ['*ub*']}", in: inNS("default"), want: noMatch},
		{name: "Namespace object uses its own name: in", match: "{namespaces: ['kube-*']}", in: objIn(namespaceU("kube-system", nil)), want: matched},
		{name: "Namespace object uses its own name: out", match: "{namespaces: ['kube-*']}", in: objIn(namespaceU("default", nil)), want: noMatch},
		{name: "Namespace admission uses its own name", match: "{namespaces: ['kube-*']}",
			in: &Admission{Request: request(t, admissionv1.Create, namespaceU("default", nil), nil)}, ep: EnforcementPointWebhook, want: noMatch},
		{name: "cluster-scoped objects are not filtered", match: "{namespaces: [default]}", in: objIn(clusterRole("admin")), want: matched},
		{name: "namespace known only from the passed Namespace", match: "{namespaces: [default]}",
			in: objInNS(pod("default", "p", nil), namespace("default", nil)), want: matched},

		// excludedNamespaces
		{name: "excluded exact", match: "{excludedNamespaces: [default]}", in: inNS("default"), want: noMatch},
		{name: "excluded other", match: "{excludedNamespaces: [default]}", in: inNS("prod"), want: matched},
		{name: "excluded prefix", match: "{excludedNamespaces: ['kube-*']}", in: inNS("kube-system"), want: noMatch},
		{name: "excluded prefix other", match: "{excludedNamespaces: ['kube-*']}", in: inNS("default"), want: matched},
		{name: "excluded suffix", match: "{excludedNamespaces: ['*-system']}", in: inNS("gatekeeper-system"), want: noMatch},
		{name: "excluded contains", match: "{excludedNamespaces: ['*ub*']}", in: inNS("kube-system"), want: noMatch},
		{name: "excluded star", match: "{excludedNamespaces: ['*']}", in: inNS("default"), want: noMatch},
		{name: "excluded Namespace object by its own name", match: "{excludedNamespaces: ['*-system']}", in: objIn(namespaceU("gatekeeper-system", nil)), want: noMatch},
		{name: "excluded Namespace object other name", match: "{excludedNamespaces: ['*-system']}", in: objIn(namespaceU("default", nil)), want: matched},
		{name: "cluster-scoped objects never excluded", match: "{excludedNamespaces: ['*']}", in: objIn(clusterRole("admin")), want: matched},
		{name: "namespaces and excludedNamespaces: included", match: "{namespaces: ['kube-*'], excludedNamespaces: [kube-public]}", in: inNS("kube-system"), want: matched},
		{name: "namespaces and excludedNamespaces: excluded wins", match: "{namespaces: ['kube-*'], excludedNamespaces: [kube-public]}", in: inNS("kube-public"), want: noMatch},

		// processes scope excludedNamespaces (a Portcullis extension).
		{name: "processes audit: excluded at audit", match: "{excludedNamespaces: [default], processes: [audit]}", in: inNS("default"), ep: EnforcementPointAudit, want: noMatch},
		{name: "processes audit: not excluded at webhook", match: "{excludedNamespaces: [default], processes: [audit]}", in: inNS("default"), ep: EnforcementPointWebhook, want: matched},
		{name: "processes star: excluded at webhook", match: "{excludedNamespaces: [default], processes: ['*']}", in: inNS("default"), ep: EnforcementPointWebhook, want: noMatch},
	})
}

func TestMatchLabelSelector(t *testing.T) {
	withLabels := func(l map[string]string) *Object { return objIn(pod("default", "p", l)) }
	web := map[string]string{"app": "web"}
	db := map[string]string{"app": "db"}
	oldWebNewDB := &Admission{Request: request(t, admissionv1.Update, pod("default", "p", db), pod("default", "p", web))}
	oldDBNewWeb := &Admission{Request: request(t, admissionv1.Update, pod("default", "p", web), pod("default", "p", db))}
	oldDBNewDB := &Admission{Request: request(t, admissionv1.Update, pod("default", "p", db), pod("default", "p", db))}
	runMatchCases(t, []matchCase{
		{name: "matchLabels in", match: "{labelSelector: {matchLabels: {app: web}}}", in: withLabels(web), want: matched},
		{name: "matchLabels other value", match: "{labelSelector: {matchLabels: {app: web}}}", in: withLabels(db), want: noMatch},
		{name: "matchLabels no labels", match: "{labelSelector: {matchLabels: {app: web}}}", in: withLabels(nil), want: noMatch},
		{name: "matchLabels all required", match: "{labelSelector: {matchLabels: {app: web, tier: fe}}}", in: withLabels(web), want: noMatch},
		{name: "empty selector selects all", match: "{labelSelector: {}}", in: withLabels(nil), want: matched},
		{name: "In in", match: "{labelSelector: {matchExpressions: [{key: app, operator: In, values: [web, api]}]}}", in: withLabels(web), want: matched},
		{name: "In out", match: "{labelSelector: {matchExpressions: [{key: app, operator: In, values: [web, api]}]}}", in: withLabels(db), want: noMatch},
		{name: "NotIn in", match: "{labelSelector: {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}}", in: withLabels(web), want: matched},
		{name: "NotIn out", match: "{labelSelector: {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}}", in: withLabels(db), want: noMatch},
		{name: "NotIn absent key", match: "{labelSelector: {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}}", in: withLabels(nil), want: matched},
		{name: "Exists in", match: "{labelSelector: {matchExpressions: [{key: app, operator: Exists}]}}", in: withLabels(db), want: matched},
		{name: "Exists out", match: "{labelSelector: {matchExpressions: [{key: app, operator: Exists}]}}", in: withLabels(nil), want: noMatch},
		{name: "DoesNotExist in", match: "{labelSelector: {matchExpressions: [{key: app, operator: DoesNotExist}]}}", in: withLabels(nil), want: matched},
		{name: "DoesNotExist out", match: "{labelSelector: {matchExpressions: [{key: app, operator: DoesNotExist}]}}", in: withLabels(web), want: noMatch},
		{name: "matchLabels AND matchExpressions: both", match: "{labelSelector: {matchLabels: {app: web}, matchExpressions: [{key: tier, operator: Exists}]}}",
			in: withLabels(map[string]string{"app": "web", "tier": "fe"}), want: matched},
		{name: "matchLabels AND matchExpressions: one", match: "{labelSelector: {matchLabels: {app: web}, matchExpressions: [{key: tier, operator: Exists}]}}",
			in: withLabels(web), want: noMatch},
		{name: "Namespace object by its own labels", match: "{labelSelector: {matchLabels: {app: web}}}", in: objIn(namespaceU("prod", web)), want: matched},
		// An UPDATE matches if either the new or the old object matches.
		{name: "UPDATE: old object matches", match: "{labelSelector: {matchLabels: {app: web}}}", in: oldWebNewDB, ep: EnforcementPointWebhook, want: matched},
		{name: "UPDATE: new object matches", match: "{labelSelector: {matchLabels: {app: web}}}", in: oldDBNewWeb, ep: EnforcementPointWebhook, want: matched},
		{name: "UPDATE: neither matches", match: "{labelSelector: {matchLabels: {app: web}}}", in: oldDBNewDB, ep: EnforcementPointWebhook, want: noMatch},
	})
}

func TestMatchNamespaceSelector(t *testing.T) {
	prod := map[string]string{"env": "prod"}
	dev := map[string]string{"env": "dev"}
	sel := "{namespaceSelector: {matchLabels: {env: prod}}}"
	p := pod("shop", "p", nil)
	syncNS := func(labels map[string]string) func(*testing.T, *Engine) {
		return func(t *testing.T, e *Engine) { mustAddData(t, e, namespaceU("shop", labels)) }
	}
	runMatchCases(t, []matchCase{
		{name: "passed Namespace matches", match: sel, in: objInNS(p, namespace("shop", prod)), want: matched},
		{name: "passed Namespace does not match", match: sel, in: objInNS(p, namespace("shop", dev)), want: noMatch},
		{name: "passed Namespace without labels", match: sel, in: objInNS(p, namespace("shop", nil)), want: noMatch},
		{name: "matchExpressions", match: "{namespaceSelector: {matchExpressions: [{key: env, operator: In, values: [prod, staging]}]}}",
			in: objInNS(p, namespace("shop", prod)), want: matched},
		{name: "admission with passed Namespace", match: sel,
			in: &Admission{Request: request(t, admissionv1.Create, p, nil), Namespace: namespace("shop", prod)}, ep: EnforcementPointWebhook, want: matched},
		{name: "Namespace object uses its own labels: in", match: sel, in: objIn(namespaceU("shop", prod)), want: matched},
		{name: "Namespace object uses its own labels: out", match: sel, in: objIn(namespaceU("shop", dev)), want: noMatch},
		{name: "Namespace admission uses its own labels", match: sel,
			in: &Admission{Request: request(t, admissionv1.Create, namespaceU("shop", prod), nil)}, ep: EnforcementPointWebhook, want: matched},
		{name: "Namespace admission uses its own labels, not the synced ones", match: sel, setup: syncNS(dev),
			in: &Admission{Request: request(t, admissionv1.Update, namespaceU("shop", prod), namespaceU("shop", prod))}, ep: EnforcementPointWebhook, want: matched},
		{name: "cluster-scoped objects match", match: sel, in: objIn(clusterRole("admin")), want: matched},
		{name: "unknown Namespace is an autoreject", match: sel, in: objIn(p), want: autoreject},
		{name: "unknown Namespace at the webhook is an autoreject", match: sel,
			in: &Admission{Request: request(t, admissionv1.Create, p, nil)}, ep: EnforcementPointWebhook, want: autoreject},
		{name: "Namespace synced with AddData: in", match: sel, setup: syncNS(prod), in: objIn(p), want: matched},
		{name: "Namespace synced with AddData: out", match: sel, setup: syncNS(dev), in: objIn(p), want: noMatch},
		{name: "passed Namespace wins over the synced one", match: sel, setup: syncNS(dev), in: objInNS(p, namespace("shop", prod)), want: matched},
		{name: "another Namespace synced does not help", match: sel,
			setup: func(t *testing.T, e *Engine) { mustAddData(t, e, namespaceU("other", prod)) }, in: objIn(p), want: autoreject},
		{name: "kinds not matching skips the selector", match: "{kinds: [{apiGroups: [apps], kinds: [Deployment]}], namespaceSelector: {matchLabels: {env: prod}}}",
			in: objIn(p), want: noMatch},
	})
}

func TestMatchName(t *testing.T) {
	generated := newObj("v1", "Pod", "default", "", nil)
	generated.SetGenerateName("web-")
	noName := newObj("v1", "Pod", "default", "", nil)
	generatedDB := newObj("v1", "Pod", "default", "", nil)
	generatedDB.SetGenerateName("orders-db")
	runMatchCases(t, []matchCase{
		{name: "exact in", match: "{name: web}", in: objIn(pod("default", "web", nil)), want: matched},
		{name: "exact out", match: "{name: web}", in: objIn(pod("default", "web2", nil)), want: noMatch},
		{name: "prefix in", match: "{name: 'web-*'}", in: objIn(pod("default", "web-1", nil)), want: matched},
		{name: "prefix out", match: "{name: 'web-*'}", in: objIn(pod("default", "api-1", nil)), want: noMatch},
		{name: "suffix in", match: "{name: '*-db'}", in: objIn(pod("default", "orders-db", nil)), want: matched},
		{name: "suffix out", match: "{name: '*-db'}", in: objIn(pod("default", "orders-db-0", nil)), want: noMatch},
		{name: "contains in", match: "{name: '*eb*'}", in: objIn(pod("default", "web", nil)), want: matched},
		{name: "star", match: "{name: '*'}", in: objIn(pod("default", "anything", nil)), want: matched},
		{name: "cluster-scoped object", match: "{name: 'system:*'}", in: objIn(clusterRole("system:admin")), want: matched},
		{name: "Namespace object", match: "{name: 'kube-*'}", in: objIn(namespaceU("kube-system", nil)), want: matched},
		{name: "generateName with prefix glob", match: "{name: 'web-*'}", in: objIn(generated), want: matched},
		{name: "generateName with other prefix", match: "{name: 'api-*'}", in: objIn(generated), want: noMatch},
		{name: "generateName admission", match: "{name: 'web-*'}",
			in: &Admission{Request: request(t, admissionv1.Create, generated, nil)}, ep: EnforcementPointWebhook, want: matched},
		{name: "no name and no generateName", match: "{name: 'web-*'}", in: objIn(noName), want: noMatch},
		{name: "generateName with star", match: "{name: '*'}", in: objIn(generated), want: matched},
		// generateName is only a prefix: the API server appends five random
		// characters. Only a glob ending in '*' can select such an object
		// (gatekeeper#2841: "any other type of name matching will not be
		// reproducible, since the suffix will be random"). An exact name
		// or a suffix glob never equals or ends the final name.
		{name: "generateName is not an exact name", match: "{name: 'web-'}", in: objIn(generated), want: noMatch},
		{name: "generateName does not end the final name", match: "{name: '*-db'}", in: objIn(generatedDB), want: noMatch},
	})
}

func TestMatchSource(t *testing.T) {
	p := pod("default", "p", nil)
	runMatchCases(t, []matchCase{
		{name: "unset: original", in: objInSource(p, ""), match: "{}", want: matched},
		{name: "unset: generated", in: objInSource(p, SourceGenerated), match: "{}", want: matched},
		{name: "All: original", match: "{source: All}", in: objInSource(p, SourceOriginal), want: matched},
		{name: "All: generated", match: "{source: All}", in: objInSource(p, SourceGenerated), want: matched},
		{name: "Original: default source", match: "{source: Original}", in: objInSource(p, ""), want: matched},
		{name: "Original: original", match: "{source: Original}", in: objInSource(p, SourceOriginal), want: matched},
		{name: "Original: generated", match: "{source: Original}", in: objInSource(p, SourceGenerated), want: noMatch},
		{name: "Generated: generated", match: "{source: Generated}", in: objInSource(p, SourceGenerated), want: matched},
		{name: "Generated: default source", match: "{source: Generated}", in: objInSource(p, ""), want: noMatch},
		{name: "Generated: admission", match: "{source: Generated}",
			in: &Admission{Request: request(t, admissionv1.Create, p, nil), Source: SourceGenerated}, ep: EnforcementPointWebhook, want: matched},
		{name: "Generated: admission original", match: "{source: Generated}",
			in: &Admission{Request: request(t, admissionv1.Create, p, nil)}, ep: EnforcementPointWebhook, want: noMatch},
	})
}

func TestMatchCriteriaAreANDed(t *testing.T) {
	m := "{kinds: [{apiGroups: [''], kinds: [Pod]}], namespaces: [default], labelSelector: {matchLabels: {app: web}}, name: 'w*', scope: Namespaced}"
	web := map[string]string{"app": "web"}
	runMatchCases(t, []matchCase{
		{name: "all criteria hold", match: m, in: objIn(pod("default", "web", web)), want: matched},
		{name: "wrong kind", match: m, in: objIn(deployment("default", "web", web)), want: noMatch},
		{name: "wrong namespace", match: m, in: objIn(pod("prod", "web", web)), want: noMatch},
		{name: "wrong labels", match: m, in: objIn(pod("default", "web", nil)), want: noMatch},
		{name: "wrong name", match: m, in: objIn(pod("default", "api", web)), want: noMatch},
	})
}

// TestMatchAutorejectMessage checks that an autoreject carries the match
// error and the constraint's enforcement action.
func TestMatchAutorejectMessage(t *testing.T) {
	for _, action := range []string{ActionDeny, ActionWarn, ActionDryrun} {
		t.Run(action, func(t *testing.T) {
			e := newEngine(t, Options{}, newTemplate(t, alwaysKind, alwaysViolateRego))
			mustAddConstraint(t, e, newConstraint(t, alwaysKind, "c",
				"{enforcementAction: "+action+", match: {namespaceSelector: {matchLabels: {env: prod}}}}"))
			vs := mustReview(t, e, objIn(pod("shop", "p", nil)), EnforcementPointAudit)
			if len(vs) != 1 {
				t.Fatalf("got %d violations (%q), want 1 autoreject", len(vs), messages(vs))
			}
			v := vs[0]
			for _, want := range []string{"unable to match", `"shop"`, "missing Namespace"} {
				if !strings.Contains(v.Message, want) {
					t.Errorf("message %q does not contain %q", v.Message, want)
				}
			}
			if v.EnforcementAction != action || !equalStrings(v.Actions, []string{action}) {
				t.Errorf("action = %q, actions = %q, want %q", v.EnforcementAction, v.Actions, action)
			}
			if v.Constraint == nil || v.Constraint.GetName() != "c" {
				t.Errorf("autoreject does not name its constraint: %v", v.Constraint)
			}
		})
	}
}

// TestMatchNamespaceCacheLifecycle checks that a synced Namespace is
// forgotten again by RemoveData and WipeData.
func TestMatchNamespaceCacheLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Options{}, newTemplate(t, alwaysKind, alwaysViolateRego))
	mustAddConstraint(t, e, newConstraint(t, alwaysKind, "c", "{match: {namespaceSelector: {matchLabels: {env: prod}}}}"))
	p := objIn(pod("shop", "p", nil))
	check := func(step, want string) {
		t.Helper()
		vs := mustReview(t, e, p, EnforcementPointAudit)
		got := "none"
		if len(vs) == 1 {
			got = vs[0].Message
		}
		if !strings.Contains(got, want) {
			t.Fatalf("%s: got %q, want %q", step, messages(vs), want)
		}
	}
	check("before sync", "unable to match")
	ns := namespaceU("shop", map[string]string{"env": "prod"})
	mustAddData(t, e, ns)
	check("after AddData", "bad")
	if err := e.RemoveData(ctx, ns); err != nil {
		t.Fatal(err)
	}
	check("after RemoveData", "unable to match")
	mustAddData(t, e, ns)
	check("after second AddData", "bad")
	if err := e.WipeData(ctx); err != nil {
		t.Fatal(err)
	}
	check("after WipeData", "unable to match")
	mustAddData(t, e, namespaceU("shop", map[string]string{"env": "dev"}))
	check("after relabel", "none")
}

// TestMatchValidation checks that malformed match criteria are refused when
// the constraint is added.
func TestMatchValidation(t *testing.T) {
	tests := []struct {
		name    string
		match   string
		wantErr string // substring; "" means valid
	}{
		{name: "valid wildcards", match: "{namespaces: ['kube-*'], excludedNamespaces: ['*-system'], name: '*x*'}"},
		{name: "scope typo is accepted", match: "{scope: cluster}"},
		{name: "bad namespace wildcard", match: "{namespaces: ['ku*be']}", wantErr: "namespaces"},
		{name: "upper-case namespace", match: "{namespaces: [Default]}", wantErr: "namespaces"},
		{name: "bad excluded wildcard", match: "{excludedNamespaces: ['a_b']}", wantErr: "excludedNamespaces"},
		{name: "bad name wildcard", match: "{name: 'a*b'}", wantErr: "name"},
		{name: "bad labelSelector operator", match: "{labelSelector: {matchExpressions: [{key: app, operator: Near}]}}", wantErr: "labelSelector"},
		{name: "In without values", match: "{labelSelector: {matchExpressions: [{key: app, operator: In}]}}", wantErr: "labelSelector"},
		{name: "bad namespaceSelector operator", match: "{namespaceSelector: {matchExpressions: [{key: env, operator: Near}]}}", wantErr: "namespaceSelector"},
		{name: "unknown source", match: "{source: Bogus}", wantErr: "source"},
		{name: "unknown field", match: "{namespace: [default]}", wantErr: "namespace"},
	}
	ct := newTemplate(t, alwaysKind, alwaysViolateRego)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Options{}, ct)
			c := newConstraint(t, alwaysKind, "c", "match: "+tc.match)
			validateErr := e.ValidateConstraint(c)
			addErr := e.AddConstraint(context.Background(), c)
			for what, err := range map[string]error{"ValidateConstraint": validateErr, "AddConstraint": addErr} {
				if tc.wantErr == "" {
					if err != nil {
						t.Errorf("%s: %v", what, err)
					}
					continue
				}
				if err == nil {
					t.Errorf("%s accepted %s", what, tc.match)
				} else if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("%s error %q does not mention %q", what, err, tc.wantErr)
				}
			}
		})
	}
}

// TestNamespaceSyncWithoutReferential checks that synced Namespaces serve
// namespaceSelector even when templates may not read data.inventory.
func TestNamespaceSyncWithoutReferential(t *testing.T) {
	e := newEngine(t, Options{DisableReferential: true}, newTemplate(t, alwaysKind, alwaysViolateRego))
	mustAddConstraint(t, e, newConstraint(t, alwaysKind, "c", "{match: {namespaceSelector: {matchLabels: {env: prod}}}}"))
	mustAddData(t, e, namespaceU("shop", map[string]string{"env": "prod"}))
	if got := messages(mustReview(t, e, objIn(pod("shop", "p", nil)), EnforcementPointAudit)); !equalStrings(got, []string{"bad"}) {
		t.Fatalf("got %q, want [bad]", got)
	}
}
