package regodriver

import (
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego/schema"
	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/frameworks/constraint/pkg/regorewriter"
	"github.com/open-policy-agent/opa/v1/ast"
)

// ErrNoRego is returned for a template target without a Rego code entry.
var ErrNoRego = errors.New("could not extract Rego from the constraint template")

const (
	// entryFile names the template's own module in locations and errors;
	// its package becomes data.template.
	entryFile = "template"
	// libFile names lib i in locations and errors.
	libFile = `libs["lib_%d"]`
	// libRoot is where templates may define and import libs.
	libRoot = "data.lib"
	// libPrefix is prepended to lib packages so that each template's libs
	// live apart: data.lib.x becomes data.libs.lib.x inside the compiler.
	libPrefix = "libs"
	// requiredRule is the rule every template must define.
	requiredRule = "violation"

	// hookFile is a module compiled with every template, never queried:
	// it makes the type checker refuse a template whose violations
	// statically lack msg, as the frameworks driver's hook does. What it
	// computes (msg required, details defaulting to {}) is done in Go on
	// the result of violationQuery; see responses.
	hookFile = "hook"
	hookRego = `package hook

violation[response] {
	data.template.violation[r]
	response := {
		"msg": r.msg,
		"details": object.get(r, "details", {}),
	}
}
`
)

// violationQuery is the query a template is prepared with: its violations,
// bound to violationsVar.
var (
	violationsVar  = ast.Var("violations")
	violationQuery = ast.NewBody(ast.Equality.Expr(
		ast.NewTerm(violationsVar),
		ast.RefTerm(ast.DefaultRootDocument, ast.StringTerm("template"), ast.StringTerm(requiredRule)),
	))
)

var hookModule = func() *ast.Module {
	m, err := ast.ParseModuleWithOpts(hookFile, hookRego, ast.ParserOptions{RegoVersion: ast.RegoV0})
	if err != nil {
		panic(fmt.Sprintf("parsing hook module: %v", err))
	}
	return m
}()

// program is a template compiled for one target, with its query compiled.
// It is immutable once built and shared by concurrent Queries.
type program struct {
	// id is unique to this compilation: results cached for it are never
	// used for another.
	id            uint64
	compiler      *ast.Compiler
	queryCompiler ast.QueryCompiler
	query         ast.Body
	// reads is what the template reads, which keys its cached results.
	reads readSet
}

// programIDs numbers compilations.
var programIDs atomic.Uint64

// parseTarget parses, checks and rewrites the Rego of one target of a
// template: the entry module plus its libs.
func parseTarget(t *templates.Target, externs []string) ([]*ast.Module, error) {
	var (
		code  templates.Code
		found bool
	)
	for _, c := range t.Code {
		if c.Engine == schema.Name {
			code, found = c, true
			break
		}
	}
	if !found {
		return nil, ErrNoRego
	}
	if code.Source == nil {
		return nil, fmt.Errorf("%w: %w: the Rego code has no source", clienterrors.ErrInvalidConstraintTemplate, ErrNoRego)
	}
	src, err := schema.GetSource(code)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", clienterrors.ErrInvalidConstraintTemplate, err)
	}
	version := ast.RegoV0
	if src.Version == "v1" {
		version = ast.RegoV1
	}

	entry, err := parseModule(entryFile, src.Rego, version)
	if err != nil {
		return nil, err
	}
	entry.Package.Path = ast.Ref{ast.DefaultRootDocument, ast.StringTerm("template")}
	if !definesRule(entry, requiredRule) {
		return nil, fmt.Errorf("%w: invalid rego: %w: missing required rules: [%s]",
			clienterrors.ErrInvalidConstraintTemplate, clienterrors.ErrInvalidModule, requiredRule)
	}

	rr, err := regorewriter.New(regorewriter.NewPackagePrefixer(libPrefix), []string{libRoot}, externs)
	if err != nil {
		return nil, fmt.Errorf("%w: creating rego rewriter: %w", clienterrors.ErrInvalidConstraintTemplate, err)
	}
	rr.AddEntryPointModule(entryFile, entry)
	for i, lib := range src.Libs {
		name := fmt.Sprintf(libFile, i)
		m, err := parseModule(name, lib, version)
		if err != nil {
			return nil, err
		}
		if err := rr.AddLib(name, m); err != nil {
			return nil, fmt.Errorf("%w: %w", clienterrors.ErrInvalidConstraintTemplate, err)
		}
	}
	sources, err := rr.Rewrite()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", clienterrors.ErrInvalidConstraintTemplate, err)
	}
	mods := make([]*ast.Module, 0, len(sources.EntryPoints)+len(sources.Libs))
	for _, m := range sources.EntryPoints {
		mods = append(mods, m.Module)
	}
	for _, m := range sources.Libs {
		mods = append(mods, m.Module)
	}
	return mods, nil
}

func parseModule(name, src string, version ast.RegoVersion) (*ast.Module, error) {
	m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: version})
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %w", clienterrors.ErrInvalidConstraintTemplate, clienterrors.ErrParse, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: %w: module %q is empty", clienterrors.ErrInvalidConstraintTemplate, clienterrors.ErrInvalidModule, name)
	}
	return m, nil
}

// definesRule reports whether m has a rule named name. As with the
// frameworks driver, a rule with a longer ref head (violation.x) does not
// count.
func definesRule(m *ast.Module, name string) bool {
	for _, r := range m.Rules {
		if string(r.Head.Name) == name {
			return true
		}
	}
	return false
}

// compile compiles a target's modules with the hook module, and the
// violation query against them.
func compile(mods []*ast.Module, caps *ast.Capabilities) (*program, error) {
	modules := make(map[string]*ast.Module, len(mods)+1)
	modules[hookFile] = hookModule
	for i, m := range mods {
		modules[fmt.Sprintf("%s%d", entryFile, i)] = m
	}
	c := ast.NewCompiler().
		WithCapabilities(caps).
		WithEnablePrintStatements(false)
	c.Compile(modules)
	if c.Failed() {
		return nil, fmt.Errorf("%w: %w", clienterrors.ErrCompile, c.Errors)
	}
	qc := c.QueryCompiler().WithEnablePrintStatements(false)
	q, err := qc.Compile(violationQuery.Copy())
	if err != nil {
		return nil, fmt.Errorf("%w: compiling the violation query: %w", clienterrors.ErrCompile, err)
	}
	return &program{id: programIDs.Add(1), compiler: c, queryCompiler: qc, query: q, reads: analyze(c)}, nil
}

// moduleNames lists a program's modules, sorted, for Dump.
func (p *program) moduleNames() []string {
	names := make([]string, 0, len(p.compiler.Modules))
	for n := range p.compiler.Modules {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
