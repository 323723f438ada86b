package celdriver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	celtypes "github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	admissioncel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"

	"github.com/portcullis-dev/portcullis/internal/resultcache"
)

// compiled is one template's compiled source: the programs the
// apiserver's composited compiler built, which Query evaluates the way
// the apiserver's ValidatingAdmissionPolicy validator does
// (validating.NewValidator), with three savings. The apiserver's validator
// converts the object, the request and the Namespace again for every
// policy, and evaluates the message expressions in a second activation
// that computes the variables again; here the review is converted once for
// every constraint of every template (reviewVars), a constraint's
// parameters are read where they are stored, the message expressions'
// activation reuses the values of the variables the validations computed
// (charging their cost again, as the apiserver does), and variables that
// read no params are evaluated once per review (see variables.go).
// TestMatchesValidator compares the two.
type compiled struct {
	source *Source
	// cc compiled the template and holds its variables (the tests build
	// the apiserver's validator from it).
	cc *admissioncel.CompositedCompiler
	// vars are the variables, built-in ones first, in the order compiled.
	vars []compiledVariable
	// varNames serves vars to the expressions (see varMap).
	varNames *varNames
	policy   admissionregistrationv1.FailurePolicyType
	// matcher evaluates the match conditions; nil when there are none.
	matcher matchconditions.Matcher
	// validations and messages are by validation; a message without a
	// Program is no messageExpression.
	validations, messages []admissioncel.CompilationResult
	// hasMessages is whether any validation has a messageExpression.
	hasMessages bool
	// id numbers this compilation, reads are what its expressions read:
	// the result cache's key (see cachekey.go).
	id    uint64
	reads readSet
}

// reviewVars are the variables of one review that every constraint sees,
// as the apiserver's activation holds them: unstructured values.
type reviewVars struct {
	attrs                                 *admission.VersionedAttributes
	object, oldObject, request, namespace any
	// shared are the values of the variables shared by all constraints,
	// by shareKey (see variables.go).
	shared map[string]*sharedValue
	// digests are the result cache's digests of the values read, by the
	// read's key (see cachekey.go).
	digests map[string]resultcache.Key
}

// newReviewVars converts a review's variables once.
func newReviewVars(attrs *admission.VersionedAttributes, ns *corev1.Namespace) (*reviewVars, error) {
	v := &reviewVars{attrs: attrs, object: unstructuredContent(attrs.VersionedObject), oldObject: unstructuredContent(attrs.VersionedOldObject)}
	req := admissioncel.CreateAdmissionRequest(attrs.Attributes, metav1.GroupVersionResource(attrs.GetResource()), metav1.GroupVersionKind(attrs.VersionedKind))
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(req)
	if err != nil {
		return nil, fmt.Errorf("%w: request: %w", ErrReview, err)
	}
	v.request = m
	if ns := admissioncel.CreateNamespaceObject(ns); ns != nil {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ns)
		if err != nil {
			return nil, fmt.Errorf("%w: namespaceObject: %w", ErrReview, err)
		}
		v.namespace = m
	}
	return v, nil
}

// unstructuredContent is an object's content, nil for none. Expressions
// only read it, so the decoded object is shared rather than copied as the
// apiserver copies it for every policy.
func unstructuredContent(o runtime.Object) any {
	u, ok := o.(*unstructured.Unstructured)
	if !ok || u == nil || u.Object == nil {
		return nil
	}
	return u.Object
}

// activation is what one constraint's expressions see: the review's
// variables, params (the constraint), and its lazily evaluated variables.
// cost is what the variables evaluated since it was last taken cost.
// values are the constraint's variables evaluated so far, by index in
// compiled.vars, which the activations of one constraint share; reading
// notes the variables read by the one being evaluated (see variables.go).
type activation struct {
	in        *reviewVars
	params    any
	variables ref.Val
	cost      int64
	values    []variableValue
	reading   *[]string
}

var _ interpreter.Activation = (*activation)(nil)

// ResolveName resolves the names the apiserver's activation resolves;
// there is no authorizer.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case admissioncel.ObjectVarName:
		return a.in.object, true
	case admissioncel.OldObjectVarName:
		return a.in.oldObject, true
	case admissioncel.ParamsVarName:
		return a.params, true
	case admissioncel.RequestVarName:
		return a.in.request, true
	case admissioncel.NamespaceVarName:
		return a.in.namespace, true
	case admissioncel.VariableVarName:
		return a.variables, true
	}
	return nil, false
}

// Parent is nil: the activation has no parent.
func (a *activation) Parent() interpreter.Activation { return nil }

// decision is one validation's outcome.
type decision struct {
	evaluation validating.PolicyDecisionEvaluation
	// deny is whether the decision denies: a failed validation, or an
	// error under the Fail policy.
	deny    bool
	message string
}

// errorDecision is the decision an evaluation error makes under the
// template's failure policy.
func (c *compiled) errorDecision(msg string) decision {
	return decision{evaluation: validating.EvalError, deny: c.policy != admissionregistrationv1.Ignore, message: msg}
}

// validate judges one constraint, params, as validating.Validator's
// Validate would with the same budget: nil when a match condition is
// false, else one decision per validation, or a single error decision.
func (c *compiled) validate(ctx context.Context, in *reviewVars, params *unstructured.Unstructured, budget int64) []decision {
	if c.matcher != nil {
		m := c.matcher.Match(ctx, in.attrs, params, nil)
		if m.Error != nil {
			return []decision{c.errorDecision(m.Error.Error())}
		}
		if !m.Matches {
			return nil
		}
	}
	act := &activation{in: in, params: params.Object, values: make([]variableValue, len(c.vars))}
	act.variables = c.variables(ctx, act)

	results := make([]ref.Val, len(c.validations))
	evalErrs := make([]error, len(c.validations))
	failed := false
	remaining := budget
	for i := range c.validations {
		var err error
		results[i], evalErrs[i], remaining, err = evaluate(ctx, act, &c.validations[i], remaining)
		if err != nil {
			return []decision{c.errorDecision(err.Error())}
		}
		if evalErrs[i] != nil || results[i] != celtypes.True {
			failed = true
		}
	}
	if !failed && !c.hasMessages {
		out := make([]decision, len(results))
		for i := range out {
			out[i] = decision{evaluation: validating.EvalAdmit}
		}
		return out
	}

	// As the apiserver's validator, every message expression is evaluated,
	// those of the validations that passed too, with what the validations
	// left of the budget, in an activation of its own: the variables they
	// read are charged again, though not evaluated again. Running out of
	// budget there makes every validation that did not fail with an error
	// of its own an error.
	msgAct := &activation{in: in, params: params.Object, values: act.values}
	msgAct.variables = c.variables(ctx, msgAct)
	messages := make([]ref.Val, len(c.validations))
	var messageErr error
	for i := range c.messages {
		if c.messages[i].Program == nil {
			continue
		}
		messages[i], _, remaining, messageErr = evaluate(ctx, msgAct, &c.messages[i], remaining)
		if messageErr != nil {
			break
		}
	}
	out := make([]decision, len(results))
	for i, v := range c.source.Validations {
		switch {
		case evalErrs[i] != nil:
			out[i] = c.errorDecision(evalErrs[i].Error())
		case errors.Is(messageErr, apiservercel.ErrInternal) || errors.Is(messageErr, apiservercel.ErrOutOfBudget):
			out[i] = c.errorDecision(fmt.Sprintf("failed messageExpression: %s", messageErr))
		case results[i] != celtypes.True:
			out[i] = decision{evaluation: validating.EvalDeny, deny: true, message: failureMessage(messages[i], v)}
		default:
			out[i] = decision{evaluation: validating.EvalAdmit}
		}
	}
	return out
}

// failureMessage is a failed validation's message as the apiserver's
// validator decides it: the message expression's value when it is a
// string that is neither blank, too long nor multi-line; else message;
// else the expression.
func failureMessage(value ref.Val, v Validation) string {
	var message string
	if value != nil {
		if s, ok := value.Value().(string); ok {
			message = strings.TrimSpace(s)
			if len(message) > celconfig.MaxEvaluatedMessageExpressionSizeBytes || strings.ContainsAny(message, "\n") {
				message = ""
			}
		}
	}
	if message == "" {
		message = strings.TrimSpace(v.Message)
	}
	if message == "" {
		message = fmt.Sprintf("failed expression: %v", strings.TrimSpace(v.Expression))
	}
	return message
}

// evaluate runs one program in act, charging its cost, and that of the
// variables it evaluated first, to the remaining budget, as the
// apiserver's activation does (admissioncel's Evaluate). It returns the
// value, or the evaluation error the expression gave; err is an error that
// ends the constraint's evaluation (the budget is spent).
func evaluate(ctx context.Context, act *activation, r *admissioncel.CompilationResult, remaining int64) (val ref.Val, evalErr error, left int64, err error) {
	out, details, err := r.Program.ContextEval(ctx, act)
	// The variables evaluated for this expression, lazily.
	cost := act.cost
	act.cost = 0
	if cost > remaining {
		return nil, nil, -1, outOfBudget()
	}
	remaining -= cost
	if details == nil {
		return nil, nil, -1, &apiservercel.Error{
			Type:   apiservercel.ErrorTypeInternal,
			Detail: fmt.Sprintf("runtime cost could not be calculated for expression: %v, no further expression will be run", r.ExpressionAccessor.GetExpression()),
		}
	}
	actual := details.ActualCost()
	if actual == nil {
		return nil, nil, -1, &apiservercel.Error{
			Type:   apiservercel.ErrorTypeInvalid,
			Detail: fmt.Sprintf("runtime cost could not be calculated for expression: %v, no further expression will be run", r.ExpressionAccessor.GetExpression()),
			Cause:  apiservercel.ErrOutOfBudget,
		}
	}
	if *actual > math.MaxInt64 || int64(*actual) > remaining {
		return nil, nil, -1, outOfBudget()
	}
	remaining -= int64(*actual)
	if err != nil {
		return nil, &apiservercel.Error{
			Type:   apiservercel.ErrorTypeInvalid,
			Detail: fmt.Sprintf("expression '%v' resulted in error: %v", r.ExpressionAccessor.GetExpression(), err),
		}, remaining, nil
	}
	return out, nil, remaining, nil
}

func outOfBudget() error {
	return &apiservercel.Error{
		Type:   apiservercel.ErrorTypeInvalid,
		Detail: "validation failed due to running out of cost budget, no further validation rules will be run",
		Cause:  apiservercel.ErrOutOfBudget,
	}
}
