package celdriver

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	admissioncel "k8s.io/apiserver/pkg/admission/plugin/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
)

// The read-set analyser: which parts of object, oldObject, request,
// namespaceObject and params a compiled template's expressions can read,
// for the result cache (see cachekey.go). Each expression is parsed again
// in the environment it was compiled in, and walked once, when the
// template is compiled.
//
// The analysis over-approximates, so that equal reads mean equal results:
// a value an expression only selects fields of (object.spec.containers) is
// read as far as the selection goes; a value used in any other way (as an
// operand, a function's argument, a comprehension's range, a list's
// element, an expression's result) is read whole, everything below it
// included. A variable is an alias: variables.containers selects further
// into whatever the variable's expression may yield (both branches of a
// conditional), and its expression's own reads count once for the
// template. Comparing a value with null reads only whether it is null
// (or, for the cost of the comparison, empty).
// A template whose expressions cannot be analyzed (one that reads
// `variables` or `request` as a whole, or an unknown variable) is not
// cached.

// Roots are the variables a read starts at.
var readRoots = map[string]bool{
	admissioncel.ObjectVarName: true, admissioncel.OldObjectVarName: true, admissioncel.RequestVarName: true,
	admissioncel.NamespaceVarName: true, admissioncel.ParamsVarName: true,
}

// readPath is a value below a root: root.segs[0].segs[1]...
type readPath struct {
	root string
	segs []string
	// test is what is read of the value.
	test readTest
}

// readTest is what a read takes of a value.
type readTest uint8

const (
	// readWhole reads the value and everything below it.
	readWhole readTest = iota
	// readNull reads only whether the value is null.
	readNull
	// readHas reads only whether the value is there (has()).
	readHas
)

func (p readPath) String() string {
	s := strings.Join(append([]string{p.root}, p.segs...), ".")
	switch p.test {
	case readNull:
		s += " == null"
	case readHas:
		s = "has(" + s + ")"
	}
	return s
}

// key is p, unambiguously: each segment after its length (a field name
// may hold dots), then the test.
func (p readPath) key() string {
	var b strings.Builder
	b.WriteString(p.root)
	for _, s := range p.segs {
		b.WriteString("|" + strconv.Itoa(len(s)) + ":" + s)
	}
	b.WriteString("|" + strconv.Itoa(int(p.test)))
	return b.String()
}

func (p readPath) child(seg string) readPath {
	return readPath{root: p.root, segs: append(slices.Clip(p.segs), seg)}
}

// covers is whether reading p reads q: p reads q's value whole, or the
// same test of it.
func (p readPath) covers(q readPath) bool {
	if p.root != q.root {
		return false
	}
	if p.test != readWhole {
		return p.test == q.test && slices.Equal(p.segs, q.segs)
	}
	return len(p.segs) <= len(q.segs) && slices.Equal(p.segs, q.segs[:len(p.segs)])
}

// readSet is what a template's expressions read.
type readSet struct {
	// cacheable is false when a result cannot be reused; why says why.
	cacheable bool
	why       string
	// paths are the values read, none covered by another, sorted; keys
	// are their key()s, which memoize their digests in a review.
	paths []readPath
	keys  []string
}

// parseEnv is the environment templates compile in, for parsing only.
var parseEnv = sync.OnceValues(func() (*cel.Env, error) {
	return environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Env(mode)
})

// readAnalyser walks expressions, collecting reads.
type readAnalyser struct {
	env   *cel.Env
	vars  map[string][]readPath // what each variable may yield
	reads []readPath
	why   string
}

// analyzeReads finds what the expressions of a compiled template read:
// its variables in order of definition (each may use the ones before),
// then its match conditions, validations and message expressions.
func analyzeReads(c *compiled, conds []admissioncel.ExpressionAccessor) readSet {
	env, err := parseEnv()
	if err != nil {
		return readSet{why: fmt.Sprintf("creating the CEL environment: %v", err)}
	}
	a := &readAnalyser{env: env, vars: map[string][]readPath{}}
	for _, v := range c.vars {
		a.vars[v.name] = a.parse(v.result.ExpressionAccessor.GetExpression())
	}
	others := slices.Clone(conds)
	for i := range c.validations {
		others = append(others, c.validations[i].ExpressionAccessor)
		if c.messages[i].ExpressionAccessor != nil {
			others = append(others, c.messages[i].ExpressionAccessor)
		}
	}
	for _, e := range others {
		a.whole(a.parse(e.GetExpression()))
	}
	if a.why != "" {
		return readSet{why: a.why}
	}
	rs := readSet{cacheable: true}
	slices.SortFunc(a.reads, func(p, q readPath) int {
		// Shorter paths before longer, whole reads before tests of the
		// same path: a covering path comes first.
		if c := strings.Compare(p.root, q.root); c != 0 {
			return c
		}
		if c := slices.Compare(p.segs, q.segs); c != 0 {
			return c
		}
		return int(p.test) - int(q.test)
	})
	for _, p := range a.reads {
		if slices.ContainsFunc(rs.paths, func(q readPath) bool { return q.covers(p) }) {
			continue
		}
		if p.root == admissioncel.RequestVarName && len(p.segs) == 0 && p.test == readWhole {
			// The request's uid differs every time.
			return readSet{why: "reads request as a whole"}
		}
		rs.paths = append(rs.paths, p)
		rs.keys = append(rs.keys, p.key())
	}
	return rs
}

func (a *readAnalyser) fail(why string) {
	if a.why == "" {
		a.why = why
	}
}

// parse analyses one expression, returning what its value may be.
func (a *readAnalyser) parse(expr string) []readPath {
	ast, iss := a.env.Parse(expr)
	if iss.Err() != nil {
		a.fail(fmt.Sprintf("parsing %q: %v", expr, iss.Err()))
		return nil
	}
	return a.expr(ast.NativeRep().Expr())
}

// whole reads values whole.
func (a *readAnalyser) whole(ps []readPath) { a.read(ps, readWhole) }

// read reads test of values.
func (a *readAnalyser) read(ps []readPath, test readTest) {
	for _, p := range ps {
		if p.root == admissioncel.VariableVarName {
			a.fail("reads variables as a whole")
			continue
		}
		p.test = test
		a.reads = append(a.reads, p)
	}
}

// selectField is what selecting field of values may yield.
func (a *readAnalyser) selectField(ps []readPath, field string) []readPath {
	var out []readPath
	for _, p := range ps {
		if p.root != admissioncel.VariableVarName {
			out = append(out, p.child(field))
			continue
		}
		// The variable the name unescapes to, as varMap.Find (and the
		// apiserver's lazy map) resolves it: variables.a__underscores__b
		// is the variable a__b.
		name, ok := field, true
		if strings.Contains(name, "__") {
			name, ok = apiservercel.Unescape(name)
		}
		yields, found := a.vars[name]
		if !ok || !found {
			a.fail(fmt.Sprintf("reads variables.%s, which is not defined before", field))
			continue
		}
		out = append(out, yields...)
	}
	return out
}

// expr analyses e: its reads are noted, and what its value may be (the
// values it selects into) returned.
func (a *readAnalyser) expr(e celast.Expr) []readPath {
	switch e.Kind() {
	case celast.IdentKind:
		// A leading dot names a root absolutely (.object), even where a
		// comprehension's variable shadows it.
		name := strings.TrimPrefix(e.AsIdent(), ".")
		if readRoots[name] || name == admissioncel.VariableVarName {
			return []readPath{{root: name}}
		}
		// A comprehension's variable: its range is read whole.
		return nil
	case celast.SelectKind:
		s := e.AsSelect()
		operand := a.expr(s.Operand())
		if s.IsTestOnly() {
			// has(x.f): reads whether x.f is there. A variable is always
			// there, but what it yields may not be: has() reads that.
			a.read(a.selectField(operand, s.FieldName()), readHas)
			return nil
		}
		return a.selectField(operand, s.FieldName())
	case celast.CallKind:
		return a.call(e.AsCall())
	case celast.ComprehensionKind:
		c := e.AsComprehension()
		for _, x := range []celast.Expr{c.IterRange(), c.AccuInit(), c.LoopCondition(), c.LoopStep(), c.Result()} {
			a.whole(a.expr(x))
		}
		return nil
	case celast.ListKind:
		for _, x := range e.AsList().Elements() {
			a.whole(a.expr(x))
		}
		return nil
	case celast.MapKind:
		for _, entry := range e.AsMap().Entries() {
			m := entry.AsMapEntry()
			a.whole(a.expr(m.Key()))
			a.whole(a.expr(m.Value()))
		}
		return nil
	case celast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			a.whole(a.expr(f.AsStructField().Value()))
		}
		return nil
	}
	// Literals read nothing.
	return nil
}

func (a *readAnalyser) call(c celast.CallExpr) []readPath {
	args := c.Args()
	switch fn := c.FunctionName(); {
	case fn == operators.Conditional && len(args) == 3:
		a.whole(a.expr(args[0]))
		return append(a.expr(args[1]), a.expr(args[2])...)
	case (fn == operators.Index || fn == operators.OptIndex || fn == operators.OptSelect) && len(args) == 2 && !c.IsMemberFunction():
		operand := a.expr(args[0])
		if k, ok := stringLiteral(args[1]); ok {
			return a.selectField(operand, k)
		}
		a.whole(operand)
		a.whole(a.expr(args[1]))
		return nil
	case (fn == operators.Equals || fn == operators.NotEquals) && len(args) == 2 && !c.IsMemberFunction():
		for i, x := range args {
			if isNull(args[1-i]) {
				a.read(a.expr(x), readNull)
				return nil
			}
		}
	}
	if c.IsMemberFunction() {
		a.whole(a.expr(c.Target()))
	}
	for _, x := range args {
		a.whole(a.expr(x))
	}
	return nil
}

func stringLiteral(e celast.Expr) (string, bool) {
	if e.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

func isNull(e celast.Expr) bool {
	return e.Kind() == celast.LiteralKind && e.AsLiteral() == types.NullValue
}
