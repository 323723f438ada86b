package vap

import (
	"errors"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

func constraint(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

const header = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata:\n  name: must-have-owner\n"

func TestBindingActions(t *testing.T) {
	scoped := func(eps string) string {
		return header + "spec:\n  enforcementAction: scoped\n  scopedEnforcementActions:\n  - action: warn\n    enforcementPoints: [{name: validation.gatekeeper.sh}]\n  - action: deny\n    enforcementPoints: " + eps + "\n"
	}
	for _, tt := range []struct {
		name string
		doc  string
		def  bool
		want []string
	}{
		{"unset: deny", header, true, []string{"deny"}},
		{"warn", header + "spec:\n  enforcementAction: warn\n", true, []string{"warn"}},
		{"dryrun", header + "spec:\n  enforcementAction: dryrun\n", true, []string{"dryrun"}},
		{"flag off", header + "spec:\n  enforcementAction: deny\n", false, nil},
		{"scoped with vap.k8s.io", scoped("[{name: vap.k8s.io}]"), false, []string{"deny"}},
		{"scoped with *", scoped(`[{name: "*"}]`), true, []string{"deny"}},
		{"scoped without", scoped("[{name: audit.gatekeeper.sh}]"), true, nil},
	} {
		got, err := BindingActions(constraint(t, tt.doc), tt.def)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v (%v), want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestBinding(t *testing.T) {
	c := constraint(t, header+`spec:
  match:
    labelSelector:
      matchLabels: {team: a}
    namespaceSelector:
      matchExpressions: [{key: env, operator: In, values: [prod]}]
`)
	b, err := Binding(c, []string{"deny", "warn", "dryrun", "deny"})
	if err != nil {
		t.Fatal(err)
	}
	s := b.Spec
	if b.Name != "gatekeeper-k8srequiredlabels-must-have-owner" || s.PolicyName != "gatekeeper-k8srequiredlabels" {
		t.Errorf("name %s, policyName %s", b.Name, s.PolicyName)
	}
	if s.ParamRef.Name != "must-have-owner" || *s.ParamRef.ParameterNotFoundAction != admissionregistrationv1.AllowAction || s.ParamRef.Namespace != "" {
		t.Errorf("paramRef %+v", s.ParamRef)
	}
	if want := []admissionregistrationv1.ValidationAction{"Deny", "Warn", "Audit"}; !slices.Equal(s.ValidationActions, want) {
		t.Errorf("validationActions %v, want %v", s.ValidationActions, want)
	}
	if s.MatchResources.ObjectSelector.MatchLabels["team"] != "a" || s.MatchResources.NamespaceSelector.MatchExpressions[0].Key != "env" ||
		*s.MatchResources.MatchPolicy != admissionregistrationv1.Equivalent {
		t.Errorf("matchResources %+v", s.MatchResources)
	}

	for _, tt := range []struct {
		name    string
		doc     string
		actions []string
		err     error
	}{
		{"no action", header, nil, ErrBadEnforcementAction},
		{"unknown action", header, []string{"block"}, ErrBadEnforcementAction},
		{"generated objects only", header + "spec:\n  match:\n    source: Generated\n", []string{"deny"}, ErrNoCELEquivalent},
		{"a selector of the wrong shape", header + "spec:\n  match:\n    labelSelector: yes\n", []string{"deny"}, nil},
	} {
		_, err := Binding(constraint(t, tt.doc), tt.actions)
		if err == nil || (tt.err != nil && !errors.Is(err, tt.err)) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
	}
}

func TestBindingName(t *testing.T) {
	if got := BindingName("K8sRequiredLabels", "owner"); got != "gatekeeper-k8srequiredlabels-owner" {
		t.Errorf("%s", got)
	}
	long := strings.Repeat("a", 250)
	n1, n2 := BindingName("Kind", long), BindingName("Kind", long+"b")
	if len(n1) > validation.DNS1123SubdomainMaxLength || n1 == n2 || n1 != BindingName("Kind", long) {
		t.Errorf("%s (%d), %s", n1, len(n1), n2)
	}
	if errs := validation.IsDNS1123Subdomain(n1); len(errs) > 0 {
		t.Errorf("%s: %v", n1, errs)
	}
	if PolicyName("labels") != "gatekeeper-labels" || legacyBindingName("owner") != "gatekeeper-owner" {
		t.Error("names")
	}
}
