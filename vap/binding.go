package vap

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// EnforcementPoint is the enforcement point of generated policies: a
// scoped constraint gets a binding when one of its actions names it (or
// *).
const EnforcementPoint = "vap.k8s.io"

// allEnforcementPoints is the enforcement point that stands for all.
const allEnforcementPoints = "*"

// Enforcement actions, and the validation action each becomes.
var validationActions = map[string]admissionregistrationv1.ValidationAction{
	"deny":   admissionregistrationv1.Deny,
	"warn":   admissionregistrationv1.Warn,
	"dryrun": admissionregistrationv1.Audit,
}

var (
	// ErrBadEnforcementAction is returned for an action that is none of
	// deny, warn and dryrun.
	ErrBadEnforcementAction = errors.New("invalid enforcement action")
	// ErrNoCELEquivalent is returned for a constraint whose match a
	// policy cannot express.
	ErrNoCELEquivalent = errors.New("the constraint's match has no ValidatingAdmissionPolicy equivalent")
)

// BindingActions are the enforcement actions of a constraint's binding,
// none when it gets no binding: for a scoped constraint, those of its
// scopedEnforcementActions that name the vap.k8s.io enforcement point
// (or *); for any other, its enforcementAction (deny when unset) when def
// (--default-create-vap-binding-for-constraints) is true.
func BindingActions(u *unstructured.Unstructured, def bool) ([]string, error) {
	action, _, err := unstructured.NestedString(u.Object, "spec", "enforcementAction")
	if err != nil {
		return nil, fmt.Errorf("%w: spec.enforcementAction: %w", ErrBadEnforcementAction, err)
	}
	if action != "scoped" {
		if !def {
			return nil, nil
		}
		if action == "" {
			action = "deny"
		}
		return []string{action}, nil
	}
	scoped, _, err := unstructured.NestedSlice(u.Object, "spec", "scopedEnforcementActions")
	if err != nil {
		return nil, fmt.Errorf("%w: spec.scopedEnforcementActions: %w", ErrBadEnforcementAction, err)
	}
	var out []string
	for _, s := range scoped {
		m, _ := s.(map[string]any)
		a, _ := m["action"].(string)
		eps, _ := m["enforcementPoints"].([]any)
		for _, ep := range eps {
			em, _ := ep.(map[string]any)
			if name, _ := em["name"].(string); name == EnforcementPoint || name == allEnforcementPoints {
				out = append(out, a)
				break
			}
		}
	}
	return out, nil
}

// Binding is the ValidatingAdmissionPolicyBinding of a constraint,
// gatekeeper-<kind>-<name> (see BindingName): it binds the policy of its
// template, gatekeeper-<lowercase kind>, to the constraint as its
// parameters (allowing requests while the constraint is not found), with
// the validation action of each enforcement action (deny: Deny, warn:
// Warn, dryrun: Audit), and the constraint's labelSelector and
// namespaceSelector as its object and namespace selectors.
func Binding(u *unstructured.Unstructured, actions []string) (*admissionregistrationv1.ValidatingAdmissionPolicyBinding, error) {
	if len(actions) == 0 {
		return nil, fmt.Errorf("%w: no enforcement action", ErrBadEnforcementAction)
	}
	var vas []admissionregistrationv1.ValidationAction
	for _, a := range actions {
		va, ok := validationActions[a]
		if !ok {
			return nil, fmt.Errorf("%w: %q is not one of deny, warn, dryrun", ErrBadEnforcementAction, a)
		}
		if !slices.Contains(vas, va) {
			vas = append(vas, va)
		}
	}
	if src, _, _ := unstructured.NestedString(u.Object, "spec", "match", "source"); src == "Generated" {
		return nil, fmt.Errorf("%w: spec.match.source is Generated, and the API server only sees the objects of requests, never those expanded from them", ErrNoCELEquivalent)
	}
	objects, err := selector(u, "labelSelector")
	if err != nil {
		return nil, err
	}
	namespaces, err := selector(u, "namespaceSelector")
	if err != nil {
		return nil, err
	}
	b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: BindingName(u.GetKind(), u.GetName())},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: PolicyName(strings.ToLower(u.GetKind())),
			ParamRef: &admissionregistrationv1.ParamRef{
				Name:                    u.GetName(),
				ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction),
			},
			MatchResources:    &admissionregistrationv1.MatchResources{ObjectSelector: objects, NamespaceSelector: namespaces},
			ValidationActions: vas,
		},
	}
	defaultMatchResources(b.Spec.MatchResources)
	return b, nil
}

// selector reads spec.match.<field> of a constraint, nil when unset.
func selector(u *unstructured.Unstructured, field string) (*metav1.LabelSelector, error) {
	m, found, err := unstructured.NestedMap(u.Object, "spec", "match", field)
	if err != nil {
		return nil, fmt.Errorf("spec.match.%s: %w", field, err)
	}
	if !found {
		return nil, nil
	}
	sel := &metav1.LabelSelector{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, sel); err != nil {
		return nil, fmt.Errorf("spec.match.%s: %w", field, err)
	}
	return sel, nil
}
