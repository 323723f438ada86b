package mutation

import (
	"fmt"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	"github.com/portcullis-dev/portcullis/mutation/path"
)

func (m *Mutator) buildAssignMetadata(spec *mutationsv1.AssignMetadataSpec) error {
	if err := m.common(spec.Location, &spec.Match, nil); err != nil {
		return err
	}
	loc := m.loc
	if len(loc) != 3 || loc[0].Name != "metadata" || loc[1].Name != "labels" && loc[1].Name != "annotations" ||
		loc[1].Kind != path.Field || loc[2].Kind != path.Field {
		return fmt.Errorf("spec.location: %q is not metadata.labels.<key> or metadata.annotations.<key>: AssignMetadata only adds labels and annotations", spec.Location)
	}
	set, err := newAssignSetter(&spec.Parameters.Assign, "spec.parameters.assign")
	if err != nil {
		return err
	}
	if set.fromMeta == "" {
		if _, ok := set.value.(string); !ok {
			return fmt.Errorf("spec.parameters.assign.value: must be a string, as labels and annotations are; got %s", describe(set.value))
		}
	}
	// Never overwrite a label or annotation that is there.
	m.tester, err = path.NewTester(loc, []path.Test{{SubPath: loc, Condition: path.MustNotExist}})
	if err != nil {
		return err
	}
	m.set, m.term = set, terminalUnknown
	return nil
}
