package celdriver

import (
	"context"
	"fmt"

	celtypes "github.com/google/cel-go/common/types"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiserver/pkg/admission"
	admissioncel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/cel/environment"
)

// builtinVariables are defined before a template's own variables, so
// that these can use them. Only variables see params (the constraint):
// validations, messages and match conditions read its parameters through
// variables.params, as in Gatekeeper.
var builtinVariables = []Variable{
	{Name: AnyObjectVariable, Expression: `object == null && has(request.operation) && request.operation == "DELETE" ? oldObject : object`},
	{Name: ParamsVariable, Expression: `has(params.spec) && has(params.spec.parameters) ? params.spec.parameters : null`},
}

// BuiltinVariables are the variables every template's own come after,
// anyObject then params: a generated ValidatingAdmissionPolicy defines
// them first too.
func BuiltinVariables() []Variable { return append([]Variable(nil), builtinVariables...) }

var (
	// withParams declares params, for variables.
	withParams = admissioncel.OptionalVariableDeclarations{HasParams: true}
	// withoutParams is for everything else.
	withoutParams = admissioncel.OptionalVariableDeclarations{}
)

// mode is the environment expressions compile in: that of stored
// ValidatingAdmissionPolicy expressions, which Gatekeeper uses too.
const mode = environment.StoredExpressions

// compileTemplate parses a template's source and compiles every
// expression with the apiserver's composited compiler. Any expression
// that does not compile refuses the template, naming its field.
func compileTemplate(ct *templates.ConstraintTemplate, defaultPolicy string) (*compiled, error) {
	src, field, err := TemplateSource(ct)
	if err != nil {
		return nil, err
	}
	cc, err := admissioncel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		return nil, fmt.Errorf("template %q: creating the CEL compiler: %w", ct.GetName(), err)
	}
	for _, v := range builtinVariables {
		if r := cc.CompileAndStoreVariable(&validating.Variable{Name: v.Name, Expression: v.Expression}, withParams, mode); r.Error != nil {
			return nil, fmt.Errorf("template %q: compiling built-in variable %s: %w", ct.GetName(), v.Name, r.Error)
		}
	}
	for i, v := range src.Variables {
		if r := cc.CompileAndStoreVariable(&validating.Variable{Name: v.Name, Expression: v.Expression}, withParams, mode); r.Error != nil {
			return nil, compileError(fmt.Sprintf("%s.variables[%d].expression", field, i), r.Error)
		}
	}

	conds := make([]admissioncel.ExpressionAccessor, len(src.MatchConditions))
	for i, mc := range src.MatchConditions {
		conds[i] = &matchconditions.MatchCondition{Name: mc.Name, Expression: mc.Expression}
		if err := check(cc, conds[i], fmt.Sprintf("%s.matchCondition[%d].expression", field, i)); err != nil {
			return nil, err
		}
	}
	validations := make([]admissioncel.ExpressionAccessor, len(src.Validations))
	messages := make([]admissioncel.ExpressionAccessor, len(src.Validations))
	for i, v := range src.Validations {
		validations[i] = &validating.ValidationCondition{Expression: v.Expression, Message: v.Message}
		if err := check(cc, validations[i], fmt.Sprintf("%s.validations[%d].expression", field, i)); err != nil {
			return nil, err
		}
		if v.MessageExpression == "" {
			continue // a nil accessor: no message expression
		}
		messages[i] = &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression}
		if err := check(cc, messages[i], fmt.Sprintf("%s.validations[%d].messageExpression", field, i)); err != nil {
			return nil, err
		}
	}

	policy := admissionregistrationv1.Fail
	if src.failurePolicy(defaultPolicy) == FailurePolicyIgnore {
		policy = admissionregistrationv1.Ignore
	}
	var matcher matchconditions.Matcher
	if len(conds) > 0 {
		matcher = matchconditions.NewMatcher(cc.CompileCondition(conds, withoutParams, mode), &policy,
			"K8sNativeValidation", "matchCondition", ct.GetName())
	}
	// The apiserver's validator evaluates every message expression, in an
	// activation of its own that computes again the variables they read,
	// whatever the validations give. Most objects pass every validation:
	// for them the messages are skipped (see onlyOnFailure).
	validator := validating.NewValidator(
		recordOutcome{cc.CompileCondition(validations, withoutParams, mode)},
		matcher,
		none{}, // templates have no audit annotations
		onlyOnFailure{cc.CompileCondition(messages, withoutParams, mode)},
		&policy, nil)
	return &compiled{source: src, validator: validator}, nil
}

// check compiles one expression on its own to report its error with its
// field; the validator compiles them again, together.
func check(cc *admissioncel.CompositedCompiler, e admissioncel.ExpressionAccessor, field string) error {
	if r := cc.CompileCELExpression(e, withoutParams, mode); r.Error != nil {
		return compileError(field, r.Error)
	}
	return nil
}

func compileError(field string, err error) error {
	return &FieldError{Field: field, Message: err.Error()}
}

// outcome is where, during one Validate, recordOutcome notes whether a
// validation failed or erred, for onlyOnFailure to read.
type outcome struct{ notAllTrue bool }

type outcomeKey struct{}

// withOutcome returns a context for one Validate.
func withOutcome(ctx context.Context) context.Context {
	return context.WithValue(ctx, outcomeKey{}, &outcome{})
}

// recordOutcome evaluates the validations and notes in the context's
// outcome whether any is not true.
type recordOutcome struct {
	admissioncel.ConditionEvaluator
}

func (r recordOutcome) ForInput(ctx context.Context, attrs *admission.VersionedAttributes, req *admissionv1.AdmissionRequest, vars admissioncel.OptionalVariableBindings, ns *corev1.Namespace, budget int64) ([]admissioncel.EvaluationResult, int64, error) {
	results, remaining, err := r.ConditionEvaluator.ForInput(ctx, attrs, req, vars, ns, budget)
	if o, ok := ctx.Value(outcomeKey{}).(*outcome); ok {
		o.notAllTrue = err != nil
		for _, res := range results {
			if res.Error != nil || res.EvalResult != celtypes.True {
				o.notAllTrue = true
			}
		}
	}
	return results, remaining, err
}

// onlyOnFailure evaluates the message expressions only when the outcome
// says a validation is not true; otherwise the validator uses no message,
// and none is evaluated. The one difference this makes: when every
// validation holds but the message expressions would exceed the cost
// budget, the apiserver's validator makes every decision an error; here
// the object passes.
type onlyOnFailure struct {
	admissioncel.ConditionEvaluator
}

func (m onlyOnFailure) ForInput(ctx context.Context, attrs *admission.VersionedAttributes, req *admissionv1.AdmissionRequest, vars admissioncel.OptionalVariableBindings, ns *corev1.Namespace, budget int64) ([]admissioncel.EvaluationResult, int64, error) {
	if o, ok := ctx.Value(outcomeKey{}).(*outcome); ok && !o.notAllTrue {
		return nil, budget, nil
	}
	return m.ConditionEvaluator.ForInput(ctx, attrs, req, vars, ns, budget)
}

// none is a ConditionEvaluator of no expressions: for the audit
// annotations templates do not have. The apiserver's evaluator of no expressions still
// converts the whole request for them, on every call.
type none struct{}

func (none) ForInput(_ context.Context, _ *admission.VersionedAttributes, _ *admissionv1.AdmissionRequest, _ admissioncel.OptionalVariableBindings, _ *corev1.Namespace, budget int64) ([]admissioncel.EvaluationResult, int64, error) {
	return nil, budget, nil
}

func (none) CompilationErrors() []error { return nil }
