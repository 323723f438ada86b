package celdriver

import (
	"context"
	"math"
	"regexp"
	"slices"
	"strings"

	celtypes "github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	admissioncel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/cel/lazy"
)

// Variables are evaluated as the apiserver's composited compiler evaluates
// them (admissioncel's compositionContext.Variables): lazily, in a
// lazy.MapValue, each charging its cost to the expression that first reads
// it in an activation (the message expressions have one of their own, as
// in the apiserver), but evaluated at most once per constraint. One saving: a variable that reads neither
// params nor, through other variables, anything that does (containers,
// anyObject, ...) has the same value for every constraint of every
// template in a review, so it is evaluated once per review and its value
// shared. Each constraint is still charged its cost, and that of the
// variables it read, when it first reads it, as if it had evaluated it.

// variablesType is the type of variables, as the composited compiler
// declares it.
var variablesType = celtypes.NewObjectType("kubernetes.variables")

// compiledVariable is one variable of a template, compiled.
type compiledVariable struct {
	name   string
	result admissioncel.CompilationResult
	// shareKey identifies the variable's value within a review: its
	// expression and, recursively, those of the variables it reads. It is
	// empty when the value may differ between constraints.
	shareKey string
	// reads are the indexes of the variables a shared variable's
	// expression names.
	reads []int
	// readsVariables is whether the expression names variables at all.
	readsVariables bool
}

var variableRef = regexp.MustCompile(`\bvariables\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)`)

// shareKeys sets the shareKey of the variables that read neither params
// nor a variable that does. The test is on the text: an expression that
// mentions params anywhere, reads variables otherwise than as
// variables.<name>, or reads a variable not declared before it, is not
// shared.
func shareKeys(vars []compiledVariable) {
	byName := make(map[string]int, len(vars))
	for i := range vars {
		byName[vars[i].name] = i
	}
	// Variables may only read those declared before them, so one pass in
	// order suffices.
	for i := range vars {
		v := &vars[i]
		expr := v.result.ExpressionAccessor.GetExpression()
		refs := variableRef.FindAllStringSubmatch(expr, -1)
		if v.result.Error != nil || strings.Contains(expr, admissioncel.ParamsVarName) ||
			strings.Count(expr, admissioncel.VariableVarName) != len(refs) {
			// Reads params, or variables otherwise than by name.
			continue
		}
		var (
			key   strings.Builder
			reads []int
		)
		key.WriteString(expr)
		shared := true
		for _, m := range refs {
			j, ok := byName[m[1]]
			if !ok || j == i || vars[j].shareKey == "" {
				shared = false
				break
			}
			key.WriteString("\x00")
			key.WriteString(m[1])
			key.WriteString("=")
			key.WriteString(vars[j].shareKey)
			if !slices.Contains(reads, j) {
				reads = append(reads, j)
			}
		}
		if shared {
			v.shareKey, v.reads = key.String(), reads
		}
	}
}

// sharedValue is a shared variable's value in one review, with the cost
// of evaluating it (not counting the variables it read) and the variables
// it read, in order.
type sharedValue struct {
	val  ref.Val
	cost int64
	read []string
}

// variableValue is the value of one of a constraint's own variables, once
// evaluated (set), with the cost of evaluating it (not counting the
// variables it read) and the variables it read, in order.
type variableValue struct {
	set  bool
	val  ref.Val
	cost int64
	read []string
}

// readsMap is the variables of an activation: it notes the variables read
// while one is evaluated (activation.reading), those already evaluated
// too, which lazy.MapValue alone does not tell.
type readsMap struct {
	*lazy.MapValue
	act *activation
}

// Find notes the variable read and finds it.
func (m *readsMap) Find(key ref.Val) (ref.Val, bool) {
	if r := m.act.reading; r != nil {
		if name, ok := key.(celtypes.String); ok && !slices.Contains(*r, string(name)) {
			*r = append(*r, string(name))
		}
	}
	return m.MapValue.Find(key)
}

// Get is Find, or an error for a variable not defined.
func (m *readsMap) Get(key ref.Val) ref.Val {
	if v, found := m.Find(key); found {
		return v
	}
	return m.MapValue.Get(key)
}

// variables returns the lazily evaluated variables of one constraint's
// activation, act. A variable already evaluated in another activation of
// the constraint (act.values) is not evaluated again, but charged again,
// with the variables it read, as the apiserver charges a variable in each
// activation that reads it.
func (c *compiled) variables(ctx context.Context, act *activation) ref.Val {
	m := lazy.NewMapValue(variablesType)
	for i := range c.vars {
		v := &c.vars[i]
		if v.shareKey == "" {
			m.Append(v.name, func(m *lazy.MapValue) ref.Val {
				vv := &act.values[i]
				if vv.set {
					act.cost = addCost(act.cost, vv.cost)
					for _, name := range vv.read {
						m.Get(celtypes.String(name))
					}
					return vv.val
				}
				outer := act.reading
				act.reading = nil
				if v.readsVariables {
					act.reading = &vv.read
				}
				vv.val, vv.cost = evalVariable(ctx, act, v)
				vv.set = true
				act.reading = outer
				act.cost = addCost(act.cost, vv.cost)
				return vv.val
			})
			continue
		}
		m.Append(v.name, func(m *lazy.MapValue) ref.Val {
			sv := c.shared(ctx, act.in, v)
			act.cost = addCost(act.cost, sv.cost)
			// Read what it read, so that those are evaluated and charged
			// here unless they already were.
			for _, name := range sv.read {
				m.Get(celtypes.String(name))
			}
			return sv.val
		})
	}
	return &readsMap{MapValue: m, act: act}
}

// shared returns the value of a shared variable in the review in,
// evaluating it the first time: in an activation whose variables are
// those its expression names, each recording that it was read.
func (c *compiled) shared(ctx context.Context, in *reviewVars, v *compiledVariable) *sharedValue {
	if sv := in.shared[v.shareKey]; sv != nil {
		return sv
	}
	sv := &sharedValue{}
	act := &activation{in: in}
	m := lazy.NewMapValue(variablesType)
	for _, j := range v.reads {
		dep := &c.vars[j]
		m.Append(dep.name, func(*lazy.MapValue) ref.Val {
			sv.read = append(sv.read, dep.name)
			return c.shared(ctx, in, dep).val
		})
	}
	act.variables = m
	sv.val, sv.cost = evalVariable(ctx, act, v)
	if in.shared == nil {
		in.shared = map[string]*sharedValue{}
	}
	in.shared[v.shareKey] = sv
	return sv
}

// evalVariable evaluates a variable in act as the apiserver's composited
// compiler does (its variableAccessor), with the same errors, and returns
// its value and cost.
func evalVariable(ctx context.Context, act *activation, v *compiledVariable) (ref.Val, int64) {
	if v.result.Error != nil {
		return celtypes.NewErr("composited variable %q fails to compile: %v", v.name, v.result.Error), 0
	}
	val, details, err := v.result.Program.ContextEval(ctx, act)
	if details == nil {
		return celtypes.NewErr("unable to get evaluation details of variable %q", v.name), 0
	}
	costPtr := details.ActualCost()
	if costPtr == nil {
		return celtypes.NewErr("unable to calculate cost of variable %q", v.name), 0
	}
	cost := int64(math.MaxInt64)
	if *costPtr <= math.MaxInt64 {
		cost = int64(*costPtr)
	}
	if err != nil {
		return celtypes.NewErr("composited variable %q fails to evaluate: %v", v.name, err), cost
	}
	return val, cost
}

// addCost adds without overflowing.
func addCost(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
