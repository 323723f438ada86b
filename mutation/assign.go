package mutation

import (
	"errors"
	"fmt"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	"github.com/portcullis-dev/portcullis/mutation/path"
)

// ErrExternalData refuses externalData, which Portcullis does not support
// yet.
var ErrExternalData = errors.New("externalData is not supported yet: Portcullis has no external data providers; assign a value or fromMetadata")

func (m *Mutator) buildAssign(spec *mutationsv1.AssignSpec) error {
	if err := m.common(spec.Location, &spec.Match, spec.Parameters.PathTests); err != nil {
		return err
	}
	if err := noMetadata(KindAssign, m.loc); err != nil {
		return err
	}
	if err := keyUnchanged(m.loc); err != nil {
		return err
	}
	set, err := newAssignSetter(&spec.Parameters.Assign, "spec.parameters.assign")
	if err != nil {
		return err
	}
	if last := m.loc.Last(); last.Kind == path.List {
		if err := checkElement(last, set); err != nil {
			return err
		}
	}
	if m.applyTo, err = parseApplyTo(spec.ApplyTo); err != nil {
		return err
	}
	if err := checkKinds(&spec.Match, m.applyTo); err != nil {
		return err
	}
	m.set, m.term = set, terminalUnknown
	return nil
}

// checkElement checks an Assign whose location ends with a list selector:
// it must name one element, and the value must be an object with the
// same key.
func checkElement(last path.Node, set *assignSetter) error {
	if last.Glob {
		return fmt.Errorf("spec.location: ends with the glob [%s: *]: an Assign can set one list element, named by its key, not every element", last.Name)
	}
	if set.fromMeta != "" {
		return errors.New("spec.parameters.assign.fromMetadata: cannot be assigned to a list element: the location ends with a list selector")
	}
	obj, ok := set.value.(map[string]any)
	if !ok {
		return fmt.Errorf("spec.parameters.assign.value: must be an object, the list element %s, since the location ends with a list selector; got %s", last.String(), describe(set.value))
	}
	if !equalKey(obj[last.Name], last.Value) {
		return fmt.Errorf("spec.parameters.assign.value.%s: must be %v, the key value of the location's list selector %s; got %v", last.Name, last.Value, last.String(), obj[last.Name])
	}
	return nil
}

// assignSetter assigns a constant value or a metadata field.
type assignSetter struct {
	value any
	// fromMeta is FieldNamespace or FieldName for fromMetadata.
	fromMeta string
}

// newAssignSetter checks parameters.assign: exactly one of value,
// fromMetadata and externalData, which is refused for now.
func newAssignSetter(a *mutationsv1.AssignField, field string) (*assignSetter, error) {
	n := 0
	for _, set := range []bool{a.Value != nil, a.FromMetadata != nil, a.ExternalData != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("%s: one of value, fromMetadata or externalData is required", field)
	case n > 1:
		return nil, fmt.Errorf("%s: only one of value, fromMetadata or externalData may be given", field)
	case a.ExternalData != nil:
		if err := checkExternalData(a.ExternalData, field+".externalData"); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s.externalData: %w", field, ErrExternalData)
	case a.FromMetadata != nil:
		switch a.FromMetadata.Field {
		case mutationsv1.FieldNamespace, mutationsv1.FieldName:
			return &assignSetter{fromMeta: a.FromMetadata.Field}, nil
		}
		return nil, fmt.Errorf("%s.fromMetadata.field: %q is not namespace or name", field, a.FromMetadata.Field)
	}
	return &assignSetter{value: mutationsv1.CopyJSON(a.Value.Value)}, nil
}

// checkExternalData checks what the CRD checks of externalData, so that
// offline input gets the same errors.
func checkExternalData(e *mutationsv1.ExternalData, field string) error {
	if e.Provider == "" {
		return fmt.Errorf("%s.provider: required", field)
	}
	switch e.DataSource {
	case "", "ValueAtLocation", "Username":
	default:
		return fmt.Errorf("%s.dataSource: %q is not ValueAtLocation or Username", field, e.DataSource)
	}
	switch e.FailurePolicy {
	case "", "UseDefault", "Ignore", "Fail":
	default:
		return fmt.Errorf("%s.failurePolicy: %q is not UseDefault, Ignore or Fail", field, e.FailurePolicy)
	}
	return nil
}

// valueFor returns a fresh copy of the value to assign in an object.
func (s *assignSetter) valueFor(meta objectMeta) any {
	switch s.fromMeta {
	case mutationsv1.FieldNamespace:
		return meta.namespace
	case mutationsv1.FieldName:
		return meta.name
	}
	return mutationsv1.CopyJSON(s.value)
}

func (s *assignSetter) set(obj map[string]any, key string, meta objectMeta) (bool, error) {
	v := s.valueFor(meta)
	if old, ok := obj[key]; ok && equalJSON(old, v) {
		return false, nil
	}
	obj[key] = v
	return true, nil
}

func (s *assignSetter) element() (map[string]any, error) {
	m, ok := mutationsv1.CopyJSON(s.value).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the value assigned to a list element is %s, not an object", describe(s.value))
	}
	return m, nil
}
