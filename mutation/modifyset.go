package mutation

import (
	"fmt"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	"github.com/portcullis-dev/portcullis/mutation/path"
)

func (m *Mutator) buildModifySet(spec *mutationsv1.ModifySetSpec) error {
	if err := m.common(spec.Location, &spec.Match, spec.Parameters.PathTests); err != nil {
		return err
	}
	if err := noMetadata(KindModifySet, m.loc); err != nil {
		return err
	}
	if last := m.loc.Last(); last.Kind == path.List {
		return fmt.Errorf("spec.location: ends with the list selector %s: a ModifySet's location is the list of values itself, such as spec.containers[name: *].args", last.String())
	}
	op := spec.Parameters.Operation
	switch op {
	case "":
		op = mutationsv1.MergeOp // the CRD's default
	case mutationsv1.MergeOp, mutationsv1.PruneOp:
	default:
		return fmt.Errorf("spec.parameters.operation: %q is not merge or prune", op)
	}
	var err error
	if m.applyTo, err = parseApplyTo(spec.ApplyTo); err != nil {
		return err
	}
	if err := checkKinds(&spec.Match, m.applyTo); err != nil {
		return err
	}
	values := spec.Parameters.Values.DeepCopy().FromList
	m.set, m.term = &setSetter{prune: op == mutationsv1.PruneOp, values: values}, terminalSet
	return nil
}

// setSetter merges values into a list, or prunes them from it, as if the
// list were a set: merged values missing are appended in order, pruned
// ones removed wherever they are. As in Gatekeeper, a merge into a list
// that does not exist writes the values as given, duplicates included.
type setSetter struct {
	prune  bool
	values []any
}

func (s *setSetter) set(obj map[string]any, key string, _ objectMeta) (bool, error) {
	cur, exists := obj[key]
	if cur == nil {
		exists = false
	}
	var list []any
	if exists {
		var ok bool
		if list, ok = cur.([]any); !ok {
			return false, fmt.Errorf("the object has %s there, not a list of values", describe(cur))
		}
	}
	if !exists && !s.prune {
		values := []any{}
		if s.values != nil {
			values = mutationsv1.CopyJSON(s.values).([]any)
		}
		obj[key] = values
		return true, nil
	}
	if s.prune {
		out := make([]any, 0, len(list))
		for _, e := range list {
			if !s.has(e) {
				out = append(out, e)
			}
		}
		if len(out) == len(list) {
			return false, nil
		}
		obj[key] = out
		return true, nil
	}
	changed := false
	for _, v := range s.values {
		if !contains(list, v) {
			list = append(list, mutationsv1.CopyJSON(v))
			changed = true
		}
	}
	if changed {
		obj[key] = list
	}
	return changed, nil
}

func (s *setSetter) has(v any) bool { return contains(s.values, v) }

func contains(list []any, v any) bool {
	for _, e := range list {
		if equalJSON(e, v) {
			return true
		}
	}
	return false
}
