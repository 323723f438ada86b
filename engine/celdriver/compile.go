package celdriver

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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
	vars := make([]compiledVariable, 0, len(builtinVariables)+len(src.Variables))
	for _, v := range builtinVariables {
		r := cc.CompileAndStoreVariable(&validating.Variable{Name: v.Name, Expression: v.Expression}, withParams, mode)
		if r.Error != nil {
			return nil, fmt.Errorf("template %q: compiling built-in variable %s: %w", ct.GetName(), v.Name, r.Error)
		}
		vars = append(vars, compiledVariable{name: v.Name, result: r})
	}
	for i, v := range src.Variables {
		r := cc.CompileAndStoreVariable(&validating.Variable{Name: v.Name, Expression: v.Expression}, withParams, mode)
		if r.Error != nil {
			return nil, compileError(fmt.Sprintf("%s.variables[%d].expression", field, i), r.Error)
		}
		vars = append(vars, compiledVariable{name: v.Name, result: r, readsVariables: strings.Contains(v.Expression, admissioncel.VariableVarName)})
	}
	shareKeys(vars)

	costs, err := newCostChecker(cc)
	if err != nil {
		return nil, fmt.Errorf("template %q: creating the CEL cost estimator: %w", ct.GetName(), err)
	}
	for i, v := range src.Variables {
		if err := costs.check(v.Expression, true, fmt.Sprintf("%s.variables[%d].expression", field, i)); err != nil {
			return nil, err
		}
	}

	all := make([]int, len(vars))
	for i := range all {
		all[i] = i
	}
	c := &compiled{source: src, cc: cc, vars: vars, varNames: newVarNames(vars, all), policy: admissionregistrationv1.Fail}
	if src.failurePolicy(defaultPolicy) == FailurePolicyIgnore {
		c.policy = admissionregistrationv1.Ignore
	}
	conds := make([]admissioncel.ExpressionAccessor, len(src.MatchConditions))
	for i, mc := range src.MatchConditions {
		conds[i] = &matchconditions.MatchCondition{Name: mc.Name, Expression: mc.Expression}
		if _, err := compileOne(cc, costs, conds[i], fmt.Sprintf("%s.matchCondition[%d].expression", field, i)); err != nil {
			return nil, err
		}
	}
	if len(conds) > 0 {
		// Match conditions are rare: the apiserver's matcher evaluates
		// them, in an activation of its own.
		c.matcher = matchconditions.NewMatcher(cc.CompileCondition(conds, withoutParams, mode), &c.policy,
			"K8sNativeValidation", "matchCondition", ct.GetName())
	}
	c.validations = make([]admissioncel.CompilationResult, len(src.Validations))
	c.messages = make([]admissioncel.CompilationResult, len(src.Validations))
	for i, v := range src.Validations {
		c.validations[i], err = compileOne(cc, costs, &validating.ValidationCondition{Expression: v.Expression, Message: v.Message},
			fmt.Sprintf("%s.validations[%d].expression", field, i))
		if err != nil {
			return nil, err
		}
		if v.MessageExpression == "" {
			continue // no program: no message expression
		}
		c.messages[i], err = compileOne(cc, costs, &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression},
			fmt.Sprintf("%s.validations[%d].messageExpression", field, i))
		if err != nil {
			return nil, err
		}
		c.hasMessages = true
	}
	c.id = compilations.Add(1)
	c.reads = analyzeReads(c, conds)
	return c, nil
}

// compileOne compiles one expression with the composited compiler and
// checks its estimated cost; an error names the field.
func compileOne(cc *admissioncel.CompositedCompiler, costs *costChecker, e admissioncel.ExpressionAccessor, field string) (admissioncel.CompilationResult, error) {
	r := cc.CompileCELExpression(e, withoutParams, mode)
	if r.Error != nil {
		return r, compileError(field, r.Error)
	}
	return r, costs.check(e.GetExpression(), false, field)
}

func compileError(field string, err error) error {
	return &FieldError{Field: field, Message: err.Error()}
}
