package regodriver

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
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

// outcome is what one constraint's evaluation gives: its violations, or
// the error a violation with a msg that is not a string makes. It is
// shared by the reviews the cache gives it to, and only read.
type outcome struct {
	violations []violation
	err        error
}

// violation is a result's msg and details (JSON values, as
// drivers.ToResult makes them).
type violation struct {
	msg     string
	details any
	// metadata is the result's Metadata, {"details": details}, shared
	// by the results made from a cached outcome.
	metadata map[string]any
}

// outcomeOf converts a template's violations for a constraint.
func outcomeOf(cw *constraintWork, v ast.Value) *outcome {
	rs := responses(v)
	out := &outcome{violations: make([]violation, 0, len(rs))}
	for _, r := range rs {
		viol, err := toViolation(cw, r)
		if err != nil {
			return &outcome{err: err}
		}
		out.violations = append(out.violations, viol)
	}
	return out
}

// toViolation converts a response as drivers.ToResult converts the
// frameworks hook's binding for it.
func toViolation(cw *constraintWork, r response) (violation, error) {
	details, err := ast.JSONWithOpt(r.details.Value, ast.JSONOpt{})
	if err != nil {
		return violation{}, fmt.Errorf("converting violation details: %w", err)
	}
	if msg, ok := r.msg.Value.(ast.String); ok {
		return violation{msg: string(msg), details: details, metadata: map[string]any{"details": details}}, nil
	}
	// Not a string: let drivers.ToResult refuse it, with its words.
	msg, err := ast.JSONWithOpt(r.msg.Value, ast.JSONOpt{})
	if err != nil {
		return violation{}, fmt.Errorf("converting violation msg: %w", err)
	}
	key := drivers.ConstraintKeyFrom(cw.constraint)
	_, err = drivers.ToResult(
		map[drivers.ConstraintKey]*unstructured.Unstructured{key: cw.constraint},
		rego.Result{Bindings: rego.Vars{"result": map[string]any{
			"msg":     msg,
			"details": details,
			"key":     map[string]any{"kind": key.Kind, "name": key.Name},
		}}},
	)
	if err == nil {
		err = errors.New("violation msg is not a string")
	}
	return violation{}, err
}
