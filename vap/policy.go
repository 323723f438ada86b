package vap

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
)

// Failure policies of a K8sNativeValidation source and of a policy.
const (
	FailurePolicyFail   = celdriver.FailurePolicyFail
	FailurePolicyIgnore = celdriver.FailurePolicyIgnore
)

// ParamAPIVersion is the apiVersion of the constraints a policy's
// paramKind names, as in Gatekeeper.
const ParamAPIVersion = "constraints.gatekeeper.sh/v1beta1"

// metadataNameLabel is the label the API server sets on every Namespace
// to its name.
const metadataNameLabel = "kubernetes.io/metadata.name"

var (
	// ErrNoCEL is returned for a template without K8sNativeValidation
	// code: it gets no policy, its constraints no binding.
	ErrNoCEL = errors.New("K8sNativeValidation engine is missing")
	// ErrOperationNoMatch is returned when the template's operations and
	// the webhook's have none in common: no policy is generated.
	ErrOperationNoMatch = errors.New("no matching operations between webhook and constraint template")
	// errOperationMismatch is the warning of a policy generated with only
	// some of the template's operations.
	errOperationMismatch = errors.New("operations mismatch between webhook and constraint template")
)

// Scope is what the webhook judges, which a policy's match follows with
// SyncEnforcementScope: the rules, selectors and match conditions of its
// validation.gatekeeper.sh webhook, and the namespaces the Config
// excludes from it.
type Scope struct {
	Rules             []admissionregistrationv1.RuleWithOperations
	NamespaceSelector *metav1.LabelSelector
	ObjectSelector    *metav1.LabelSelector
	MatchPolicy       *admissionregistrationv1.MatchPolicyType
	MatchConditions   []admissionregistrationv1.MatchCondition
	// ExcludedNamespaces are the wildcards of the namespaces the Config
	// excludes from the webhook.
	ExcludedNamespaces []string
}

// PolicyInput is what a template's policy depends on besides the
// template.
type PolicyInput struct {
	// DefaultFailurePolicy is the failure policy of a source that sets
	// none: Fail (when empty) or Ignore.
	DefaultFailurePolicy string
	// Scope is what the webhook judges; nil when the policy does not
	// follow it (--sync-vap-enforcement-scope=false).
	Scope *Scope
	// Namespace is Portcullis's own namespace, never matched.
	Namespace string
	// Exempt are the wildcards of the exempt namespaces (a prefix as
	// "prefix*", a suffix as "*suffix"), never matched.
	Exempt []string
}

// Source returns the template's K8sNativeValidation source, ErrNoCEL
// when it has none, or the error that makes it invalid.
func Source(ct *templates.ConstraintTemplate) (*celdriver.Source, error) {
	if celdriver.CodeIndex(ct) < 0 {
		return nil, ErrNoCEL
	}
	src, _, err := celdriver.TemplateSource(ct)
	if err != nil {
		return nil, err
	}
	return src, nil
}

// GeneratesPolicy reports whether the template gets a policy: its
// source's generateVAP, else def (--default-create-vap-for-templates).
// The error is ErrNoCEL for a template without CEL.
func GeneratesPolicy(ct *templates.ConstraintTemplate, def bool) (bool, error) {
	src, err := Source(ct)
	if err != nil {
		return false, err
	}
	if src.GenerateVAP != nil {
		return *src.GenerateVAP, nil
	}
	return def, nil
}

// Policy is the ValidatingAdmissionPolicy of a template, gatekeeper-<name>:
// its paramKind is the constraint kind; its variables are anyObject,
// params and the template's; its validations the template's; its match
// conditions the template's, then the translation of the constraint's
// match (kinds, scope, name, namespaces, excludedNamespaces), then the
// exclusions of the Config and of the exempt namespaces; its failure
// policy the source's or in.DefaultFailurePolicy. warning is not empty
// when the policy has only some of the template's operations.
func Policy(ct *templates.ConstraintTemplate, in PolicyInput) (policy *admissionregistrationv1.ValidatingAdmissionPolicy, warning string, err error) {
	src, err := Source(ct)
	if err != nil {
		return nil, "", err
	}
	fp := FailurePolicyFail
	switch {
	case src.FailurePolicy != nil:
		fp = *src.FailurePolicy
	case in.DefaultFailurePolicy != "":
		fp = in.DefaultFailurePolicy
	}
	if fp != FailurePolicyFail && fp != FailurePolicyIgnore {
		return nil, "", fmt.Errorf("unrecognized failure policy %q: want %s or %s", fp, FailurePolicyFail, FailurePolicyIgnore)
	}

	var conds []admissionregistrationv1.MatchCondition
	for _, mc := range src.MatchConditions {
		conds = append(conds, admissionregistrationv1.MatchCondition{Name: mc.Name, Expression: mc.Expression})
	}
	conds = append(conds, constraintMatchConditions()...)
	if in.Scope != nil && len(in.Scope.ExcludedNamespaces) > 0 {
		conds = append(conds, globalExcluded(in.Scope.ExcludedNamespaces))
	}
	if len(in.Exempt) > 0 {
		conds = append(conds, globalExempted(in.Exempt))
	}

	vars := builtinVariables()
	for _, v := range src.Variables {
		vars = append(vars, admissionregistrationv1.Variable{Name: v.Name, Expression: v.Expression})
	}
	validations := make([]admissionregistrationv1.Validation, len(src.Validations))
	for i, v := range src.Validations {
		validations[i] = admissionregistrationv1.Validation{Expression: v.Expression, Message: v.Message, MessageExpression: v.MessageExpression}
	}

	var match *admissionregistrationv1.MatchResources
	if in.Scope == nil {
		match = defaultMatch(in.Namespace)
	} else {
		if match, warning, err = scopedMatch(ct, in.Scope); err != nil {
			return nil, "", err
		}
		conds = append(conds, in.Scope.MatchConditions...)
	}

	policy = &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: PolicyName(ct.GetName())},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind:        &admissionregistrationv1.ParamKind{APIVersion: ParamAPIVersion, Kind: ct.Spec.CRD.Spec.Names.Kind},
			MatchConstraints: match,
			Validations:      validations,
			FailurePolicy:    new(admissionregistrationv1.FailurePolicyType(fp)),
			MatchConditions:  conds,
			Variables:        vars,
		},
	}
	defaultPolicy(policy)
	return policy, warning, nil
}

// defaultMatch matches CREATE and UPDATE of every resource, as
// Gatekeeper's policies do when they do not follow the webhook, but never
// in Portcullis's own namespace.
func defaultMatch(namespace string) *admissionregistrationv1.MatchResources {
	m := &admissionregistrationv1.MatchResources{
		ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
			RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*"}},
			},
		}},
	}
	if namespace != "" {
		m.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: metadataNameLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{namespace},
		}}}
	}
	return m
}

// allOperations are the operations * stands for, in the order a policy
// lists them.
var allOperations = []admissionregistrationv1.OperationType{
	admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete, admissionregistrationv1.Connect,
}

func expandOperations(ops []admissionregistrationv1.OperationType) []admissionregistrationv1.OperationType {
	if slices.Contains(ops, admissionregistrationv1.OperationAll) {
		return allOperations
	}
	return ops
}

// scopedMatch matches what the webhook's rules and selectors match, each
// rule with the operations it has in common with the template's
// targets[0].operations (all of its own when the template lists none).
func scopedMatch(ct *templates.ConstraintTemplate, scope *Scope) (*admissionregistrationv1.MatchResources, string, error) {
	var ctOps []admissionregistrationv1.OperationType
	if len(ct.Spec.Targets) == 1 {
		ctOps = expandOperations(ct.Spec.Targets[0].Operations)
	}
	mismatch := false
	rules := make([]admissionregistrationv1.NamedRuleWithOperations, 0, len(scope.Rules))
	for _, r := range scope.Rules {
		ops := slices.Clone(r.Operations)
		if len(ctOps) > 0 {
			webhookOps := expandOperations(r.Operations)
			ops = nil
			for _, op := range allOperations {
				if slices.Contains(webhookOps, op) && slices.Contains(ctOps, op) {
					ops = append(ops, op)
				}
			}
			if len(ops) == 0 {
				return nil, "", fmt.Errorf("%w: the template's operations are %s, the webhook's %s",
					ErrOperationNoMatch, opList(ctOps), opList(r.Operations))
			}
			mismatch = mismatch || len(ops) != len(ctOps)
		}
		rule := *r.Rule.DeepCopy()
		rules = append(rules, admissionregistrationv1.NamedRuleWithOperations{
			RuleWithOperations: admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: rule},
		})
	}
	m := &admissionregistrationv1.MatchResources{
		ResourceRules:     rules,
		NamespaceSelector: scope.NamespaceSelector.DeepCopy(),
		ObjectSelector:    scope.ObjectSelector.DeepCopy(),
		MatchPolicy:       scope.MatchPolicy,
	}
	warning := ""
	if mismatch {
		warning = errOperationMismatch.Error()
	}
	return m, warning, nil
}

func opList(ops []admissionregistrationv1.OperationType) string {
	s := make([]string, len(ops))
	for i, op := range ops {
		s[i] = string(op)
	}
	return strings.Join(s, ", ")
}

// defaultPolicy sets the fields the API server defaults, so that a
// policy as generated compares equal to the one stored.
func defaultPolicy(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
	if p.Spec.FailurePolicy == nil {
		p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Fail)
	}
	if p.Spec.MatchConstraints != nil {
		defaultMatchResources(p.Spec.MatchConstraints)
	}
}

func defaultMatchResources(m *admissionregistrationv1.MatchResources) {
	if m.MatchPolicy == nil {
		m.MatchPolicy = ptr.To(admissionregistrationv1.Equivalent)
	}
	if m.NamespaceSelector == nil {
		m.NamespaceSelector = &metav1.LabelSelector{}
	}
	if m.ObjectSelector == nil {
		m.ObjectSelector = &metav1.LabelSelector{}
	}
	for _, rules := range [][]admissionregistrationv1.NamedRuleWithOperations{m.ResourceRules, m.ExcludeResourceRules} {
		for i := range rules {
			if rules[i].Scope == nil {
				rules[i].Scope = ptr.To(admissionregistrationv1.AllScopes)
			}
		}
	}
}
