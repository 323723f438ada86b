package celdriver

import (
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	admissioncel "k8s.io/apiserver/pkg/admission/plugin/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/library"
)

// The apiserver refuses a CustomResourceDefinition validation rule whose
// estimated cost exceeds its budget, with sizes bounded by the schema's
// maxItems, maxProperties and maxLength. A template's objects have no
// schema: bounded by nothing, any expression that iterates over the object
// has an unbounded estimate, and the apiserver's ValidatingAdmissionPolicy
// (which Gatekeeper follows) estimates nothing and relies on the runtime
// budget. Here an expression is refused when its estimated cost exceeds
// the per-call budget even for the smallest inputs: every list, map and
// string the object, the parameters or the request holds, and every value
// computed from them whose size is not known, of size at most one. Such
// an expression would run out of budget on nearly every object; an
// expression whose cost depends on the object stays for the runtime budget
// to bound.

// smallestInputs is a size estimator for which every size the checker
// cannot compute (the inputs', and what is computed from them) is at most
// one.
type smallestInputs struct{}

func (smallestInputs) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: 1}
}

func (smallestInputs) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// costChecker estimates the cost of a template's expressions.
type costChecker struct {
	// envs declare what expressions see, by whether they see params.
	envs   map[bool]*cel.Env
	budget uint64
}

// newCostChecker returns a checker of the expressions cc compiles: its
// environment, with its variables, and the admission variables, as dyn
// (the estimate is about sizes, not types). Call it once the variables
// are stored.
func newCostChecker(cc *admissioncel.CompositedCompiler) (*costChecker, error) {
	env, err := cc.Env(mode)
	if err != nil {
		return nil, err
	}
	vars := []cel.EnvOption{
		cel.Variable(admissioncel.ObjectVarName, cel.DynType),
		cel.Variable(admissioncel.OldObjectVarName, cel.DynType),
		cel.Variable(admissioncel.NamespaceVarName, cel.DynType),
		cel.Variable(admissioncel.RequestVarName, cel.DynType),
	}
	without, err := env.Extend(vars...)
	if err != nil {
		return nil, err
	}
	with, err := without.Extend(cel.Variable(admissioncel.ParamsVarName, cel.DynType))
	if err != nil {
		return nil, err
	}
	return &costChecker{envs: map[bool]*cel.Env{false: without, true: with}, budget: celconfig.PerCallLimit}, nil
}

// check refuses expr, which compiled, when its estimated cost for the
// smallest inputs exceeds the budget. An expression the estimate cannot
// handle is left to the runtime budget.
func (c *costChecker) check(expr string, params bool, field string) error {
	env := c.envs[params]
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil
	}
	est, err := env.EstimateCost(ast, &library.CostEstimator{SizeEstimator: smallestInputs{}})
	if err != nil || est.Max <= c.budget {
		return nil
	}
	return &FieldError{Field: field, Message: costMessage(est.Max, c.budget)}
}

// costMessage says by how much an estimate exceeds the budget, in the
// apiserver's words for validation rules.
func costMessage(cost, budget uint64) string {
	factor := float64(cost) / float64(budget)
	var f string
	switch {
	case factor > 100:
		f = "more than 100x"
	case factor < 1.5:
		f = fmt.Sprintf("%fx", factor)
	default:
		f = fmt.Sprintf("%.1fx", factor)
	}
	return fmt.Sprintf("estimated cost exceeds budget by factor of %s even for the smallest objects and parameters, so the expression would run out of its runtime cost budget (%d) on nearly every request (try simplifying it)", f, budget)
}
