package regodriver

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var (
	msgKey     = ast.StringTerm("msg")
	detailsKey = ast.StringTerm("details")
)

// evalEnv is what all evaluations of one Query share.
type evalEnv struct {
	store  storage.Store
	txn    storage.Transaction
	cancel topdown.Cancel
	// digests and dataGen key the result cache; digests is nil when the
	// cache is not used.
	digests *reviewDigests
	dataGen uint64
}

// eval evaluates the template's violations for one input; nil means
// undefined. The query was compiled in AddTemplate, so this only
// evaluates: the store is read through env.txn, so data written since the
// template was added is seen.
func (p *program) eval(ctx context.Context, env *evalEnv, input ast.Value, tracer topdown.QueryTracer) (ast.Value, error) {
	q := topdown.NewQuery(p.query).
		WithQueryCompiler(p.queryCompiler).
		WithCompiler(p.compiler).
		WithStore(env.store).
		WithTransaction(env.txn).
		WithInput(ast.NewTerm(input)).
		WithCancel(env.cancel).
		WithMetrics(metrics.NoOp())
	if tracer != nil {
		q = q.WithQueryTracer(tracer)
	}
	var out ast.Value
	err := q.Iter(ctx, func(qr topdown.QueryResult) error {
		if t := qr[violationsVar]; t != nil {
			out = t.Value
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// response is one violation as reported: msg (any value; Query fails
// later if it is not a string) and details.
type response struct {
	msg, details *ast.Term
}

// responses does what the frameworks driver's hook rule does with a
// template's violations: for each r in data.template.violation[r], the
// response {"msg": r.msg, "details": object.get(r, "details", {})}, as a
// set: undefined parts drop the response, equal responses collapse, and
// they come in set order (details, then msg).
func responses(v ast.Value) []response {
	var elems []*ast.Term
	switch x := v.(type) {
	case ast.Set:
		elems = x.Slice()
	case ast.Object:
		// violation[r] over an object ranges over its keys.
		elems = x.Keys()
	default:
		// Arrays yield indices, scalars nothing: r.msg is undefined.
		return nil
	}
	terms := make([]*ast.Term, 0, len(elems))
	for _, r := range elems {
		// r.msg is only defined for an object with msg (a set holding
		// "msg" defines it too, but then object.get fails, which outside
		// strict mode makes the response undefined as well).
		obj, ok := r.Value.(ast.Object)
		if !ok {
			continue
		}
		msg := obj.Get(msgKey)
		if msg == nil {
			continue
		}
		details := obj.Get(detailsKey)
		if details == nil {
			details = ast.ObjectTerm()
		}
		terms = append(terms, ast.ObjectTerm(ast.Item(detailsKey, details), ast.Item(msgKey, msg)))
	}
	if len(terms) > 1 {
		terms = ast.NewSet(terms...).Slice()
	}
	out := make([]response, len(terms))
	for i, t := range terms {
		obj := t.Value.(ast.Object)
		out[i] = response{msg: obj.Get(msgKey), details: obj.Get(detailsKey)}
	}
	return out
}

// toResult makes the result drivers.ToResult would make from the
// frameworks hook's binding for this response.
func toResult(cw *constraintWork, r response) (*types.Result, error) {
	details, err := ast.JSONWithOpt(r.details.Value, ast.JSONOpt{})
	if err != nil {
		return nil, fmt.Errorf("converting violation details: %w", err)
	}
	if msg, ok := r.msg.Value.(ast.String); ok {
		return &types.Result{
			Msg:        string(msg),
			Metadata:   map[string]interface{}{"details": details},
			Constraint: cw.report(),
		}, nil
	}
	// Not a string: let drivers.ToResult refuse it, with its words.
	msg, err := ast.JSONWithOpt(r.msg.Value, ast.JSONOpt{})
	if err != nil {
		return nil, fmt.Errorf("converting violation msg: %w", err)
	}
	key := drivers.ConstraintKeyFrom(cw.constraint)
	res, err := drivers.ToResult(
		map[drivers.ConstraintKey]*unstructured.Unstructured{key: cw.constraint},
		rego.Result{Bindings: rego.Vars{"result": map[string]interface{}{
			"msg":     msg,
			"details": details,
			"key":     map[string]interface{}{"kind": key.Kind, "name": key.Name},
		}}},
	)
	if err == nil {
		err = errors.New("violation msg is not a string")
	}
	return res, err
}
