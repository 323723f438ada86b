package celdriver

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Name is the engine name of CEL code in a ConstraintTemplate, as in
// Gatekeeper: spec.targets[].code[].engine: K8sNativeValidation.
const Name = "K8sNativeValidation"

// Built-in variables the driver defines before the template's own, and the
// prefix reserved for more of them, as in Gatekeeper.
const (
	// ParamsVariable is variables.params: the constraint's
	// spec.parameters, or null.
	ParamsVariable = "params"
	// AnyObjectVariable is variables.anyObject: object, or oldObject on a
	// DELETE (where object is null).
	AnyObjectVariable = "anyObject"
	// ReservedPrefix may not start a template's variable or match
	// condition name.
	ReservedPrefix = "gatekeeper_internal_"
)

// Failure policies: what an evaluation error becomes.
const (
	// FailurePolicyFail makes an evaluation error a violation whose
	// message is the error.
	FailurePolicyFail = "Fail"
	// FailurePolicyIgnore drops an evaluation error.
	FailurePolicyIgnore = "Ignore"
)

// ErrInvalidSource is wrapped by every error ParseSource returns.
var ErrInvalidSource = errors.New("invalid K8sNativeValidation source")

// Source is the source of a K8sNativeValidation code entry. The JSON keys
// are Gatekeeper's: note matchCondition, singular.
type Source struct {
	Validations     []Validation     `json:"validations,omitempty"`
	FailurePolicy   *string          `json:"failurePolicy,omitempty"`
	MatchConditions []MatchCondition `json:"matchCondition,omitempty"`
	Variables       []Variable       `json:"variables,omitempty"`
	// GenerateVAP, when set, decides whether the template gets a
	// ValidatingAdmissionPolicy, over --default-create-vap-for-templates
	// (see package vap).
	GenerateVAP *bool `json:"generateVAP,omitempty"`

	// Ignored says what of the source is ignored, each "field: why":
	// unknown fields (Gatekeeper decodes the source leniently and ignores
	// them too, so a template it accepts is accepted), and a source
	// without validations, which never reports anything. The webhook
	// answers them as warnings.
	Ignored []string `json:"-"`
}

// ignore notes that field is ignored, and why.
func (s *Source) ignore(field, format string, args ...any) {
	s.Ignored = append(s.Ignored, field+": "+fmt.Sprintf(format, args...))
}

// Validation is one CEL condition an object must satisfy.
type Validation struct {
	Expression        string `json:"expression"`
	Message           string `json:"message,omitempty"`
	MessageExpression string `json:"messageExpression,omitempty"`
}

// MatchCondition is a CEL condition that must hold for the template to
// judge a request at all.
type MatchCondition struct {
	Name       string `json:"name"`
	Expression string `json:"expression"`
}

// Variable is a named CEL expression, evaluated lazily as
// variables.<name>.
type Variable struct {
	Name       string `json:"name"`
	Expression string `json:"expression"`
}

// failurePolicy is the source's failure policy, def when unset.
func (s *Source) failurePolicy(def string) string {
	if s.FailurePolicy == nil {
		return def
	}
	return *s.FailurePolicy
}

// sourceKeys are the keys a source may have, with the decoder of each.
var sourceKeys = map[string]func(s *Source, v any, field string) error{
	"validations":    decodeValidations,
	"failurePolicy":  decodeFailurePolicy,
	"matchCondition": decodeMatchConditions,
	"variables":      decodeVariables,
	"generateVAP":    decodeGenerateVAP,
}

// ParseSource decodes and checks the source of a K8sNativeValidation code
// entry; field is where it is in the template, such as
// spec.targets[0].code[1].source, and errors name the offending field
// below it. Expressions are not compiled here (see Driver.AddTemplate).
func ParseSource(v any, field string) (*Source, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fieldError(field, "must be an object, not %s", typeName(v))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := &Source{}
	for _, k := range keys {
		decode, ok := sourceKeys[k]
		if !ok {
			hint := ""
			if k == "matchConditions" {
				hint = " (Gatekeeper's key is matchCondition, singular)"
			}
			s.ignore(field+"."+k, "unknown field, ignored as Gatekeeper ignores it%s; known fields are %s", hint, knownKeys())
			continue
		}
		if m[k] == nil {
			continue
		}
		if err := decode(s, m[k], field+"."+k); err != nil {
			return nil, err
		}
	}
	if len(s.Validations) == 0 {
		s.ignore(field+".validations", "no validation: the template never reports a violation")
	}
	return s, nil
}

func knownKeys() string {
	keys := make([]string, 0, len(sourceKeys))
	for k := range sourceKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func decodeValidations(s *Source, v any, field string) error {
	items, err := list(v, field)
	if err != nil {
		return err
	}
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		m, err := object(s, it, f, "expression", "message", "messageExpression")
		if err != nil {
			return err
		}
		var val Validation
		if val.Expression, err = str(m, "expression", f); err != nil {
			return err
		}
		if val.Message, err = str(m, "message", f); err != nil {
			return err
		}
		if val.MessageExpression, err = str(m, "messageExpression", f); err != nil {
			return err
		}
		if strings.TrimSpace(val.Expression) == "" {
			if val.Message == "" && val.MessageExpression == "" {
				return fieldError(f, "a validation needs an expression (it has neither expression nor message)")
			}
			return fieldError(f+".expression", "required")
		}
		s.Validations = append(s.Validations, val)
	}
	return nil
}

func decodeFailurePolicy(s *Source, v any, field string) error {
	p, ok := v.(string)
	if !ok {
		return fieldError(field, "must be a string, not %s", typeName(v))
	}
	if p != FailurePolicyFail && p != FailurePolicyIgnore {
		return fieldError(field, "%q is not one of %s, %s", p, FailurePolicyFail, FailurePolicyIgnore)
	}
	s.FailurePolicy = &p
	return nil
}

func decodeMatchConditions(s *Source, v any, field string) error {
	return decodeNamed(s, v, field, nil, func(name, expression string) {
		s.MatchConditions = append(s.MatchConditions, MatchCondition{Name: name, Expression: expression})
	})
}

func decodeVariables(s *Source, v any, field string) error {
	check := func(name, field string) error {
		if name == ParamsVariable || name == AnyObjectVariable {
			return fieldError(field, "%q is a built-in variable and cannot be redefined", name)
		}
		if !isIdentifier(name) {
			return fieldError(field, "%q is not a valid CEL identifier (letters, digits and _, not starting with a digit)", name)
		}
		return nil
	}
	return decodeNamed(s, v, field, check, func(name, expression string) {
		s.Variables = append(s.Variables, Variable{Name: name, Expression: expression})
	})
}

// decodeNamed decodes a list of {name, expression}, the shape of match
// conditions and variables: each name is checked by checkName, then by
// check when not nil; each expression is required; add takes them in order.
func decodeNamed(s *Source, v any, field string, check func(name, field string) error, add func(name, expression string)) error {
	items, err := list(v, field)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		m, err := object(s, it, f, "name", "expression")
		if err != nil {
			return err
		}
		name, err := str(m, "name", f)
		if err != nil {
			return err
		}
		expression, err := str(m, "expression", f)
		if err != nil {
			return err
		}
		if err := checkName(name, f+".name", seen); err != nil {
			return err
		}
		if check != nil {
			if err := check(name, f+".name"); err != nil {
				return err
			}
		}
		if strings.TrimSpace(expression) == "" {
			return fieldError(f+".expression", "required")
		}
		add(name, expression)
	}
	return nil
}

func decodeGenerateVAP(s *Source, v any, field string) error {
	b, ok := v.(bool)
	if !ok {
		return fieldError(field, "must be a boolean, not %s", typeName(v))
	}
	s.GenerateVAP = &b
	return nil
}

// checkName checks a variable or match condition name: present, not
// reserved, not seen before.
func checkName(name, field string, seen map[string]bool) error {
	switch {
	case name == "":
		return fieldError(field, "required")
	case strings.HasPrefix(name, ReservedPrefix):
		return fieldError(field, "%q starts with %q, which is reserved", name, ReservedPrefix)
	case seen[name]:
		return fieldError(field, "%q is defined twice", name)
	}
	seen[name] = true
	return nil
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func list(v any, field string) ([]any, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, fieldError(field, "must be a list, not %s", typeName(v))
	}
	return items, nil
}

// object checks that v is an object; keys other than those given are
// noted in s as ignored.
func object(s *Source, v any, field string, keys ...string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fieldError(field, "must be an object, not %s", typeName(v))
	}
	unknown := make([]string, 0, len(m))
	for k := range m {
		if !slices.Contains(keys, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		s.ignore(field+"."+k, "unknown field, ignored as Gatekeeper ignores it; known fields are %s", strings.Join(keys, ", "))
	}
	return m, nil
}

// str reads an optional string field.
func str(m map[string]any, key, field string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fieldError(field+"."+key, "must be a string, not %s", typeName(v))
	}
	return s, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int32, int64, float32, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// FieldError is a problem with one field of a template's CEL source:
// malformed, or an expression that does not compile.
type FieldError struct {
	// Field is the field's path in the template, such as
	// spec.targets[0].code[1].source.validations[2].expression.
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap lets errors.Is match ErrInvalidSource.
func (e *FieldError) Unwrap() error { return ErrInvalidSource }

func fieldError(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}
