package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// A Namespace known only through the inventory reaches Rego as
// input.review.namespaceObject, as it reaches the matcher.
func TestSyncedNamespaceIsNamespaceObject(t *testing.T) {
	ct := newTemplate(t, "K8sNsLabel", `package x
violation[{"msg": msg}] { msg := sprintf("team=%v", [input.review.namespaceObject.metadata.labels.team]) }`)
	e := newEngine(t, Options{}, ct)
	mustAddConstraint(t, e, newConstraint(t, "K8sNsLabel", "c", ""))
	p := pod("prod", "p", nil)
	if got := messages(mustReview(t, e, &Object{Object: p}, EnforcementPointAudit)); len(got) != 0 {
		t.Fatalf("before sync: %v, want no violation (namespaceObject undefined)", got)
	}
	mustAddData(t, e, namespaceU("prod", map[string]string{"team": "payments"}))
	got := messages(mustReview(t, e, &Object{Object: p}, EnforcementPointAudit))
	if len(got) != 1 || got[0] != "team=payments" {
		t.Fatalf("after sync: %v, want [team=payments]", got)
	}
}

func TestAddDataErrorsUnwrap(t *testing.T) {
	e := newEngine(t, Options{})
	bad := &unstructured.Unstructured{Object: obj{"apiVersion": "v1", "metadata": obj{"name": "x"}}}
	err := e.AddData(context.Background(), bad)
	if !errors.Is(err, ErrBadObject) {
		t.Fatalf("AddData error = %v, want one wrapping ErrBadObject", err)
	}
}

func TestScopedEnforcementPointNames(t *testing.T) {
	ok := newConstraint(t, "K", "c", `{enforcementAction: scoped, scopedEnforcementActions: [{action: warn, enforcementPoints: [{name: "audit.gatekeeper.sh"}, {name: "*"}]}]}`)
	if err := ValidateEnforcementAction(ok); err != nil {
		t.Fatalf("known points refused: %v", err)
	}
	typo := newConstraint(t, "K", "c", `{enforcementAction: scoped, scopedEnforcementActions: [{action: warn, enforcementPoints: [{name: "validaton.gatekeeper.sh"}]}]}`)
	err := ValidateEnforcementAction(typo)
	if !errors.Is(err, ErrEnforcementAction) || !strings.Contains(err.Error(), "enforcementPoints[0].name") {
		t.Fatalf("typo: err = %v, want ErrEnforcementAction naming enforcementPoints[0].name", err)
	}
}

func TestScopedActionsAreSorted(t *testing.T) {
	ct := newTemplate(t, "K8sAlwaysViolate", `package x
violation[{"msg": "bad"}] { true }`)
	e := newEngine(t, Options{}, ct)
	mustAddConstraint(t, e, newConstraint(t, "K8sAlwaysViolate", "c", `{enforcementAction: scoped, scopedEnforcementActions: [{action: warn, enforcementPoints: [{name: "*"}]}, {action: dryrun, enforcementPoints: [{name: "*"}]}, {action: deny, enforcementPoints: [{name: "*"}]}]}`))
	for range 5 {
		vs := mustReview(t, e, &Object{Object: pod("ns", "p", nil)}, EnforcementPointWebhook)
		if len(vs) != 1 || strings.Join(vs[0].Actions, ",") != "deny,dryrun,warn" {
			t.Fatalf("actions = %v, want [deny dryrun warn]", vs)
		}
	}
}
