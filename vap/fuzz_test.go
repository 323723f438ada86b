package vap

import (
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

// FuzzBinding generates the binding of arbitrary constraints: never a
// panic, and a name an object may have whenever the constraint's is one.
func FuzzBinding(f *testing.F) {
	for _, seed := range []string{
		`{"kind":"K8sRequiredLabels","metadata":{"name":"a"},"spec":{"enforcementAction":"warn"}}`,
		`{"kind":"K","metadata":{"name":"a"},"spec":{"enforcementAction":"scoped","scopedEnforcementActions":[{"action":"deny","enforcementPoints":[{"name":"vap.k8s.io"}]}]}}`,
		`{"kind":"K","metadata":{"name":"a"},"spec":{"match":{"labelSelector":{"matchLabels":{"a":"b"}},"namespaceSelector":"x","source":"Generated"}}}`,
		`{"kind":"K","metadata":{"name":"a"},"spec":{"enforcementAction":"scoped","scopedEnforcementActions":"x"}}`,
		`{"spec":null}`,
	} {
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, def bool) {
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal(data, &u.Object); err != nil || u.Object == nil {
			return
		}
		actions, err := BindingActions(u, def)
		if err != nil || len(actions) == 0 {
			return
		}
		b, err := Binding(u, actions)
		if err != nil {
			return
		}
		if len(validation.IsDNS1123Subdomain(u.GetName())) == 0 && len(validation.IsDNS1123Label(u.GetKind())) == 0 {
			if errs := validation.IsDNS1123Subdomain(b.Name); len(errs) > 0 {
				t.Errorf("binding name %q of %s %s: %v", b.Name, u.GetKind(), u.GetName(), errs)
			}
		}
	})
}

// FuzzPolicy generates the policy of templates with arbitrary CEL
// sources and operations: never a panic, and every policy has the
// validations of its source.
func FuzzPolicy(f *testing.F) {
	for _, seed := range []string{
		`{"validations":[{"expression":"true","message":"m"}],"failurePolicy":"Ignore"}`,
		`{"validations":[{"expression":"true"}],"variables":[{"name":"v","expression":"1"}],"matchCondition":[{"name":"c","expression":"true"}],"generateVAP":false}`,
		`{"validations":"x"}`,
		`{"failurePolicy":"Sometimes","validations":[{"expression":"true"}]}`,
	} {
		f.Add([]byte(seed), "CREATE,DELETE", true)
	}
	f.Fuzz(func(t *testing.T, data []byte, ops string, scoped bool) {
		var src any
		if err := json.Unmarshal(data, &src); err != nil {
			return
		}
		ct := &templates.ConstraintTemplate{}
		ct.SetName("t")
		ct.Spec.CRD.Spec.Names.Kind = "T"
		target := templates.Target{Target: "admission.k8s.gatekeeper.sh", Code: []templates.Code{{Engine: "K8sNativeValidation", Source: &templates.Anything{Value: src}}}}
		for i := 0; i < len(ops); i += 6 {
			target.Operations = append(target.Operations, admissionregistrationv1.OperationType(ops[i:min(i+6, len(ops))]))
		}
		ct.Spec.Targets = []templates.Target{target}
		in := PolicyInput{Namespace: "ns", Exempt: []string{"ex*"}}
		if scoped {
			in.Scope = &Scope{Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}}}}
		}
		p, _, err := Policy(ct, in)
		if err != nil {
			return
		}
		s, err := Source(ct)
		if err != nil {
			t.Fatalf("Policy took a source Source refuses: %v", err)
		}
		if len(p.Spec.Validations) != len(s.Validations) || p.Name != "gatekeeper-t" {
			t.Errorf("%d validations, want %d", len(p.Spec.Validations), len(s.Validations))
		}
	})
}
