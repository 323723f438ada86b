package engine

import (
	"errors"
	"fmt"
	"strings"

	fwapis "github.com/open-policy-agent/frameworks/constraint/pkg/apis"
	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	templatesv1alpha1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1alpha1"
	templatesv1beta1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1beta1"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
	"github.com/portcullis-dev/portcullis/engine/regodriver"
)

// TemplateGroup is the API group of ConstraintTemplates.
const TemplateGroup = "templates.gatekeeper.sh"

// ErrInvalidTemplate is returned for templates that cannot be used.
var ErrInvalidTemplate = errors.New("invalid ConstraintTemplate")

var crdScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		apiextensions.AddToScheme, apiextensionsv1.AddToScheme, fwapis.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("building scheme: %v", err))
		}
	}
	return s
}()

// Scheme returns a scheme with the ConstraintTemplate and CRD types.
func Scheme() *runtime.Scheme { return crdScheme }

// ParseTemplate converts a ConstraintTemplate of any served version
// (v1, v1beta1, v1alpha1) to the versionless type, applying the defaults the
// API server would, such as legacySchema.
func ParseTemplate(u *unstructured.Unstructured) (*templates.ConstraintTemplate, error) {
	gvk := u.GroupVersionKind()
	if gvk.Group != TemplateGroup || gvk.Kind != "ConstraintTemplate" {
		return nil, fmt.Errorf("%w: %q is a %s, not a %s/ConstraintTemplate", ErrInvalidTemplate, u.GetName(), gvk, TemplateGroup)
	}
	type versioned interface {
		ToVersionless() (*templates.ConstraintTemplate, error)
	}
	var v versioned
	switch gvk.Version {
	case "v1":
		v = &templatesv1.ConstraintTemplate{}
	case "v1beta1":
		v = &templatesv1beta1.ConstraintTemplate{}
	case "v1alpha1":
		v = &templatesv1alpha1.ConstraintTemplate{}
	default:
		return nil, fmt.Errorf("%w: %q: unknown version %q (want v1, v1beta1 or v1alpha1)", ErrInvalidTemplate, u.GetName(), gvk.Version)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v); err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInvalidTemplate, u.GetName(), err)
	}
	if err := checkCodeSources(u); err != nil {
		return nil, err
	}
	ct, err := v.ToVersionless()
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInvalidTemplate, u.GetName(), err)
	}
	if err := validateTemplate(ct); err != nil {
		return nil, err
	}
	return ct, nil
}

// checkCodeSources rejects a code entry without a source, which the
// frameworks client would otherwise crash on.
func checkCodeSources(u *unstructured.Unstructured) error {
	targets, _, _ := unstructured.NestedSlice(u.Object, "spec", "targets")
	for i, t := range targets {
		tm, _ := t.(map[string]any)
		code, _ := tm["code"].([]any)
		for j, c := range code {
			cm, _ := c.(map[string]any)
			if src, ok := cm["source"]; !ok || src == nil {
				return fmt.Errorf("%w: %q: spec.targets[%d].code[%d].source is required", ErrInvalidTemplate, u.GetName(), i, j)
			}
		}
	}
	return nil
}

// validateTemplate checks what the frameworks client would otherwise report
// less clearly: the name and the number of targets.
func validateTemplate(ct *templates.ConstraintTemplate) error {
	kind := ct.Spec.CRD.Spec.Names.Kind
	if kind == "" {
		return fmt.Errorf("%w: %q: spec.crd.spec.names.kind is required", ErrInvalidTemplate, ct.GetName())
	}
	if ct.GetName() != strings.ToLower(kind) {
		return fmt.Errorf("%w: metadata.name %q must be the lowercase of spec.crd.spec.names.kind %q, i.e. %q",
			ErrInvalidTemplate, ct.GetName(), kind, strings.ToLower(kind))
	}
	if n := len(ct.Spec.Targets); n != 1 {
		return fmt.Errorf("%w: %q: spec.targets must have exactly one target, has %d", ErrInvalidTemplate, ct.GetName(), n)
	}
	for j, code := range ct.Spec.Targets[0].Code {
		if code.Source == nil || code.Source.Value == nil {
			return fmt.Errorf("%w: %q: spec.targets[0].code[%d].source is required", ErrInvalidTemplate, ct.GetName(), j)
		}
	}
	if err := hasEngine(ct); err != nil {
		return err
	}
	if t := ct.Spec.Targets[0].Target; t != TargetName {
		return fmt.Errorf("%w: %q: spec.targets[0].target %q is unknown (want %s)", ErrInvalidTemplate, ct.GetName(), t, TargetName)
	}
	return nil
}

// hasEngine refuses a template with neither Rego nor CEL code, naming the
// engines it has.
func hasEngine(ct *templates.ConstraintTemplate) error {
	t := ct.Spec.Targets[0]
	if t.Rego != "" {
		return nil
	}
	var engines []string
	for _, code := range t.Code {
		if code.Engine == regoEngine || code.Engine == celdriver.Name {
			return nil
		}
		engines = append(engines, code.Engine)
	}
	if len(engines) == 0 {
		return fmt.Errorf("%w: %q: spec.targets[0] has neither rego nor code", ErrInvalidTemplate, ct.GetName())
	}
	return fmt.Errorf("%w: %q: spec.targets[0].code has no Rego or %s entry, only %s",
		ErrInvalidTemplate, ct.GetName(), celdriver.Name, strings.Join(engines, ", "))
}

// Engines a template's code may select.
const (
	EngineRego = regoEngine
	EngineCEL  = celdriver.Name
)

// regoEngine is the code engine of Rego.
const regoEngine = "Rego"

// HasCode reports whether a template has code for an engine (EngineRego,
// which the legacy rego field counts as, or EngineCEL).
func HasCode(ct *templates.ConstraintTemplate, engine string) bool {
	if len(ct.Spec.Targets) != 1 {
		return false
	}
	t := ct.Spec.Targets[0]
	if engine == EngineRego && t.Rego != "" {
		return true
	}
	for _, c := range t.Code {
		if c.Engine == engine {
			return true
		}
	}
	return false
}

// engineFor is the engine that evaluates a template, as Gatekeeper
// chooses it: K8sNativeValidation when the template has it, unless
// celFirst is false and the template has Rego too.
func engineFor(ct *templates.ConstraintTemplate, celFirst bool) string {
	if HasCode(ct, EngineCEL) && (celFirst || !HasCode(ct, EngineRego)) {
		return EngineCEL
	}
	return EngineRego
}

// CompileError is a Rego or CEL error in a template, with its position in
// the source the author wrote: for Rego the field, line and column; for CEL
// the field of the expression (the message locates the error in it).
type CompileError struct {
	Template string
	Field    string // e.g. spec.targets[0].rego or spec.targets[0].code[1].source.validations[2].expression
	Row, Col int
	Message  string
}

func (e *CompileError) Error() string {
	if e.Row > 0 {
		return fmt.Sprintf("template %q: %s: line %d, column %d: %s", e.Template, e.Field, e.Row, e.Col, e.Message)
	}
	return fmt.Sprintf("template %q: %s: %s", e.Template, e.Field, e.Message)
}

// templateError explains why a driver or the CRD builder refused a template.
// Parse and compile problems are located by re-parsing the template's own
// Rego, which gives the line and column in the author's source.
func templateError(ct *templates.ConstraintTemplate, err error) error {
	if fe, ok := errors.AsType[*celdriver.FieldError](err); ok {
		return &located{cerr: &CompileError{Template: ct.GetName(), Field: fe.Field, Message: fe.Message}, cause: err}
	}
	if fe := regodriver.LocateError(ct); fe != nil {
		cerr := &CompileError{Template: ct.GetName(), Field: fe.Field, Row: fe.Row, Col: fe.Col, Message: fe.Message}
		return &located{cerr: cerr, cause: err}
	}
	return fmt.Errorf("%w: %q: %w", ErrInvalidTemplate, ct.GetName(), err)
}

// located is a template error explained by a CompileError; it still
// matches the driver's error with errors.Is.
type located struct {
	cerr  *CompileError
	cause error
}

func (l *located) Error() string   { return ErrInvalidTemplate.Error() + ": " + l.cerr.Error() }
func (l *located) Unwrap() []error { return []error{ErrInvalidTemplate, l.cerr, l.cause} }
