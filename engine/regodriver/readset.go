package regodriver

import (
	"maps"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The read-set analyser: what a compiled template reads of its input
// and of the data store, for the result cache (see cache.go).

// readSet is what a compiled template reads.
type readSet struct {
	// cacheable is false when a result cannot be reused.
	cacheable bool
	// paths are the parts of input.review read, without the leading
	// "review", none a prefix of another, sorted.
	paths [][]*ast.Term
	// keys are paths joined, to memoize digests within a Query.
	keys []string
	// readsData is true when the template reads the data store.
	readsData bool
	// why says why a template is not cacheable.
	why string
}

// ownRoots are the data documents a template's own rules live in: its
// module, its libs (rewritten under data.libs) and the hook.
var ownRoots = map[string]bool{"template": true, libPrefix: true, "hook": true}

var reviewSeg = ast.StringTerm("review")

// analyze finds what a compiled template reads.
func analyze(c *ast.Compiler) readSet {
	a := &analyser{funcs: map[string][]*ast.Rule{}, memo: map[string][][][]*ast.Term{}, cacheable: true}
	for _, m := range c.Modules {
		for _, r := range m.Rules {
			if len(r.Head.Args) > 0 {
				name := r.Ref().String()
				if len(r.Head.Reference) > 0 {
					name = m.Package.Path.Extend(r.Head.Ref()).String()
				}
				a.funcs[name] = append(a.funcs[name], r)
			}
		}
	}
	var paths [][]*ast.Term
	input := ast.Var("input")
	for _, m := range c.Modules {
		a.walk(m, map[ast.Var]rootAt{input: {base: input}}, func(_ ast.Var, p []*ast.Term) { paths = append(paths, p) })
		if !a.cacheable {
			return readSet{why: a.why}
		}
	}
	rs := readSet{cacheable: true, readsData: a.readsData}

	// Only input.review.<something> can be keyed: the parameters are keyed
	// by constraint, and the whole review holds the request's uid.
	var review [][]*ast.Term
	for _, p := range paths {
		if len(p) == 0 || !p[0].Equal(reviewSeg) {
			if len(p) == 0 || !p[0].Equal(parametersKey) {
				return readSet{why: "reads input as a whole"}
			}
			continue
		}
		if len(p) == 1 {
			return readSet{why: "reads input.review as a whole"}
		}
		review = append(review, p[1:])
	}
	sort.Slice(review, func(i, j int) bool { return pathKey(review[i]) < pathKey(review[j]) })
	for _, p := range review {
		if n := len(rs.paths); n > 0 && hasPrefix(p, rs.paths[n-1]) {
			continue
		}
		rs.paths = append(rs.paths, p)
		rs.keys = append(rs.keys, pathKey(p))
	}
	return rs
}

// analyser follows reads of input (and of function arguments) through a
// compiled template.
type analyser struct {
	// funcs are the template's functions by name (data.template.f).
	funcs map[string][]*ast.Rule
	// memo holds per function, per argument, the paths read below it.
	memo      map[string][][][]*ast.Term
	cacheable bool
	why       string
	readsData bool
}

func (a *analyser) uncacheable(why string) {
	if a.cacheable {
		a.cacheable, a.why = false, why
	}
}

// rootAt is where a variable points: below base (input, or a function's
// argument) at prefix. Besides the roots themselves, a local variable
// unified once with a constant reference into a root is one: in
// `x = input.review; f(x)`, which the compiler writes for `not
// f(input.review)`, x is input.review.
type rootAt struct {
	base   ast.Var
	prefix []*ast.Term
}

// walk visits x and calls read with each path read below a root's base:
// a reference root.a.b[x] reads [a, b]; root on its own reads it all.
func (a *analyser) walk(x any, roots map[ast.Var]rootAt, read func(ast.Var, []*ast.Term)) {
	roots, aliases, defs := withAliases(x, roots)
	used := map[ast.Var]bool{}
	markUsed := func(v ast.Var) {
		// Through an alias, its own root is used too.
		for ok := true; ok && !used[v]; v, ok = aliases[v] {
			used[v] = true
		}
	}
	readAt := func(at rootAt, path []*ast.Term) {
		read(at.base, append(append([]*ast.Term{}, at.prefix...), path...))
	}
	var visit func(x any) bool
	walkTerm := func(t *ast.Term) { ast.NewGenericVisitor(visit).Walk(t) }
	// call handles a call of op on args; false leaves it to the visitor.
	call := func(op ast.Ref, args []*ast.Term) bool {
		name := op.String()
		if b, ok := ast.BuiltinMap[name]; ok {
			if b.Nondeterministic {
				a.uncacheable("calls " + name)
				return true
			}
			if name != ast.ObjectGet.Name || len(args) < 2 {
				return false
			}
			// object.get(root.a, "b", d) and object.get(root.a, ["b", "c"], d)
			// read root.a.b and root.a.b.c.
			at, v, ok := rootRef(args[0], roots)
			if !ok {
				return false
			}
			var keys []*ast.Term
			switch k := args[1].Value.(type) {
			case ast.String:
				keys = []*ast.Term{args[1]}
			case *ast.Array:
				for i := 0; i < k.Len(); i++ {
					if _, ok := k.Elem(i).Value.(ast.String); !ok {
						return false
					}
					keys = append(keys, k.Elem(i))
				}
			default:
				return false
			}
			markUsed(v)
			readAt(at, keys)
			for _, t := range args[2:] {
				walkTerm(t)
			}
			return true
		}
		if _, ok := a.funcs[name]; !ok {
			return false
		}
		// A function of the template: what it reads below an argument
		// that is (part of) a root is read from that root. An argument
		// it ignores must still be defined for the call to be.
		for i, arg := range args {
			at, v, ok := rootRef(arg, roots)
			if !ok {
				walkTerm(arg)
				continue
			}
			markUsed(v)
			reads := a.argReads(name, i)
			if len(reads) == 0 {
				readAt(at, nil)
			}
			for _, p := range reads {
				readAt(at, p)
			}
		}
		return true
	}
	visit = func(x any) bool {
		if !a.cacheable {
			return true
		}
		switch x := x.(type) {
		case *ast.With:
			a.uncacheable("uses with")
			return true
		case *ast.Expr:
			if defs[x] {
				// x = root.a: read where x is used.
				return true
			}
			if x.IsCall() {
				terms := x.Terms.([]*ast.Term)
				if op, ok := terms[0].Value.(ast.Ref); ok && call(op, terms[1:]) {
					for _, w := range x.With {
						visit(w)
					}
					return true
				}
			}
		case ast.Call:
			if op, ok := x[0].Value.(ast.Ref); ok && call(op, x[1:]) {
				return true
			}
		case ast.Var:
			// A root, or data, on its own.
			if at, ok := roots[x]; ok {
				markUsed(x)
				readAt(at, nil)
			} else if x.Equal(ast.DefaultRootDocument.Value) {
				a.readsData = true
			}
		case ast.Ref:
			head, ok := x[0].Value.(ast.Var)
			at, isRoot := roots[head]
			switch {
			case ok && isRoot:
				markUsed(head)
				readAt(at, constantPrefix(x[1:]))
			case ok && head.Equal(ast.DefaultRootDocument.Value):
				if len(x) < 2 {
					a.readsData = true
				} else if s, ok := x[1].Value.(ast.String); !ok || !ownRoots[string(s)] {
					a.readsData = true
				}
			default:
				walkTerm(x[0])
			}
			// The operands of the reference (root.a[root.b]) are read too.
			for _, t := range x[1:] {
				walkTerm(t)
			}
			return true
		}
		return false
	}
	ast.NewGenericVisitor(visit).Walk(x)
	// An alias never used still has to be defined for its rule to hold.
	for v := range aliases {
		if !used[v] {
			readAt(roots[v], nil)
		}
	}
}

// withAliases finds, in x, the local variables unified exactly once, with
// a constant reference into one of roots (or into such a variable). It
// returns roots extended with them, the variable each one's reference
// names, and their defining expressions.
func withAliases(x any, roots map[ast.Var]rootAt) (map[ast.Var]rootAt, map[ast.Var]ast.Var, map[*ast.Expr]bool) {
	type def struct {
		expr  *ast.Expr
		other *ast.Term
		count int
	}
	defs := map[ast.Var]*def{}
	ast.NewGenericVisitor(func(x any) bool {
		e, ok := x.(*ast.Expr)
		if !ok || !e.IsEquality() {
			return false
		}
		terms := e.Terms.([]*ast.Term)
		for i, t := range terms[1:] {
			v, ok := t.Value.(ast.Var)
			if !ok || v.IsWildcard() {
				continue
			}
			if _, isRoot := roots[v]; isRoot {
				continue
			}
			d := defs[v]
			if d == nil {
				d = &def{}
				defs[v] = d
			}
			d.count++
			d.expr, d.other = e, terms[2-i]
		}
		return false
	}).Walk(x)
	out := roots
	aliases := map[ast.Var]ast.Var{}
	exprs := map[*ast.Expr]bool{}
	for changed := true; changed; {
		changed = false
		for v, d := range defs {
			if d.count != 1 || d.expr.Negated || len(d.expr.With) > 0 {
				continue
			}
			if _, done := out[v]; done {
				continue
			}
			at, via, ok := rootRef(d.other, out)
			if !ok {
				continue
			}
			if len(out) == len(roots) {
				out = make(map[ast.Var]rootAt, len(roots)+len(defs))
				maps.Copy(out, roots)
			}
			out[v] = at
			aliases[v] = via
			exprs[d.expr] = true
			changed = true
		}
	}
	return out, aliases, exprs
}

// argReads returns the paths function name reads below its argument i,
// over all its definitions. Rego has no recursion, so this terminates; a
// cycle guard keeps a malformed program from looping.
func (a *analyser) argReads(name string, i int) [][]*ast.Term {
	if byArg, ok := a.memo[name]; ok {
		if byArg == nil {
			// A cycle: assume the whole argument is read.
			return [][]*ast.Term{nil}
		}
		if i < len(byArg) {
			return byArg[i]
		}
		return nil
	}
	a.memo[name] = nil
	var byArg [][][]*ast.Term
	for _, r := range a.funcs[name] {
		for j, arg := range r.Head.Args {
			for len(byArg) <= j {
				byArg = append(byArg, nil)
			}
			v, ok := arg.Value.(ast.Var)
			if !ok {
				// A pattern or a constant: matched as a whole.
				byArg[j] = append(byArg[j], nil)
				continue
			}
			roots := map[ast.Var]rootAt{v: {base: v}}
			collect := func(_ ast.Var, p []*ast.Term) { byArg[j] = append(byArg[j], p) }
			for rule := r; rule != nil; rule = rule.Else {
				a.walk(rule.Body, roots, collect)
				if rule.Head.Value != nil {
					a.walk(rule.Head.Value, roots, collect)
				}
			}
		}
	}
	a.memo[name] = byArg
	if i < len(byArg) {
		return byArg[i]
	}
	return nil
}

// rootRef reports whether t is one of roots or an all-constant reference
// into one (root.a.b, not root.a[x]), and where it points. v is the root
// variable t names.
func rootRef(t *ast.Term, roots map[ast.Var]rootAt) (at rootAt, v ast.Var, ok bool) {
	switch x := t.Value.(type) {
	case ast.Var:
		if r, ok := roots[x]; ok {
			return r, x, true
		}
	case ast.Ref:
		head, isVar := x[0].Value.(ast.Var)
		r, isRoot := roots[head]
		if !isVar || !isRoot {
			break
		}
		prefix := constantPrefix(x[1:])
		if len(prefix) != len(x)-1 {
			break
		}
		return rootAt{base: r.base, prefix: append(append([]*ast.Term{}, r.prefix...), prefix...)}, head, true
	}
	return rootAt{}, "", false
}

// constantPrefix is the leading run of string operands of a reference:
// input.review.object.spec.containers[_].image reads
// review.object.spec.containers.
func constantPrefix(ops []*ast.Term) []*ast.Term {
	for i, t := range ops {
		if _, ok := t.Value.(ast.String); !ok {
			return ops[:i]
		}
	}
	return ops
}

func hasPrefix(p, prefix []*ast.Term) bool {
	if len(prefix) > len(p) {
		return false
	}
	for i := range prefix {
		if !p[i].Equal(prefix[i]) {
			return false
		}
	}
	return true
}

// pathKey joins a path's strings with NUL, which sorts a prefix before its
// extensions.
func pathKey(p []*ast.Term) string {
	var b strings.Builder
	for i, t := range p {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(string(t.Value.(ast.String)))
	}
	return b.String()
}
