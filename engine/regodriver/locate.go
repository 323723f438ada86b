package regodriver

import (
	"errors"
	"fmt"
	"sort"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/opa/v1/ast"
)

// FieldError is an error in a template's Rego, located in the source its
// author wrote: the template field the module comes from and, when the
// parser or compiler gives one, the line and column in it.
type FieldError struct {
	// Field is the field's path in the template, such as
	// spec.targets[0].rego, spec.targets[0].libs[1] or
	// spec.targets[0].code[0].source.rego.
	Field    string
	Row, Col int
	Message  string
}

func (e *FieldError) Error() string {
	if e.Row > 0 {
		return fmt.Sprintf("%s: line %d, column %d: %s", e.Field, e.Row, e.Col, e.Message)
	}
	return e.Field + ": " + e.Message
}

// LocateError parses and compiles a template's Rego and libs on their
// own and returns the first error with its position, or nil. The legacy
// rego and libs fields are named when they hold the same source as the
// Rego code entry.
func LocateError(ct *templates.ConstraintTemplate) *FieldError {
	for i, t := range ct.Spec.Targets {
		for j, code := range t.Code {
			if code.Engine != "Rego" || code.Source == nil {
				continue
			}
			src, ok := code.Source.Value.(map[string]any)
			if !ok {
				continue
			}
			field := fmt.Sprintf("spec.targets[%d].code[%d].source", i, j)
			version := ast.RegoV0
			if v, _ := src["version"].(string); v == "v1" {
				version = ast.RegoV1
			}
			sources := map[string]string{}
			if rego, _ := src["rego"].(string); rego != "" {
				name := field + ".rego"
				if t.Rego == rego {
					name = fmt.Sprintf("spec.targets[%d].rego", i)
				}
				sources[name] = rego
			}
			libs, _ := src["libs"].([]any)
			for k, l := range libs {
				lib, _ := l.(string)
				name := fmt.Sprintf("%s.libs[%d]", field, k)
				if k < len(t.Libs) && t.Libs[k] == lib {
					name = fmt.Sprintf("spec.targets[%d].libs[%d]", i, k)
				}
				sources[name] = lib
			}
			if e := locateInSources(sources, version); e != nil {
				return e
			}
		}
	}
	return nil
}

// locateInSources parses and compiles modules named by the template field
// they come from; an error's file is that field.
func locateInSources(sources map[string]string, version ast.RegoVersion) *FieldError {
	modules := map[string]*ast.Module{}
	fields := make([]string, 0, len(sources))
	for f := range sources {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		mod, err := ast.ParseModuleWithOpts(f, sources[f], ast.ParserOptions{RegoVersion: version})
		if err != nil {
			return toFieldError(f, err)
		}
		modules[f] = mod
	}
	c := ast.NewCompiler().WithCapabilities(ast.CapabilitiesForThisVersion())
	c.Compile(modules)
	if !c.Failed() {
		return nil
	}
	return toFieldError(fields[0], c.Errors)
}

// toFieldError locates the first of err's Rego errors, in field unless
// its location names another.
func toFieldError(field string, err error) *FieldError {
	var errs ast.Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		return &FieldError{Field: field, Message: err.Error()}
	}
	e := errs[0]
	fe := &FieldError{Field: field, Message: fmt.Sprintf("%s: %s", e.Code, e.Message)}
	if e.Location != nil {
		fe.Row, fe.Col = e.Location.Row, e.Location.Col
		if e.Location.File != "" {
			fe.Field = e.Location.File
		}
	}
	return fe
}
