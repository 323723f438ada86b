package mutation

import (
	"cmp"
	"fmt"
	"strconv"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
)

// Kinds of mutators, in the order the System applies them.
const (
	KindAssign         = "Assign"
	KindAssignImage    = "AssignImage"
	KindAssignMetadata = "AssignMetadata"
	KindModifySet      = "ModifySet"
)

// Kinds are the mutator kinds, sorted.
var Kinds = []string{KindAssign, KindAssignImage, KindAssignMetadata, KindModifySet}

// ID names a mutator: its kind and name (mutators are cluster-scoped, all
// in mutations.gatekeeper.sh).
type ID struct {
	Kind string
	Name string
}

// String is how Gatekeeper names a mutator in errors, such as
// "Assign.mutations.gatekeeper.sh /demo-sidecar".
func (id ID) String() string {
	return id.Kind + "." + mutationsv1.Group + " /" + id.Name
}

// compare orders IDs as mutators are applied: by kind, then by name.
func (id ID) compare(o ID) int {
	return cmp.Or(cmp.Compare(id.Kind, o.Kind), cmp.Compare(id.Name, o.Name))
}

// annotation is how a mutator is listed in the gatekeeper.sh/mutations
// annotation and in logs: <kind>/<namespace>/<name>:<generation>, the
// namespace empty.
func annotation(id ID, generation int64) string {
	return fmt.Sprintf("%s//%s:%s", id.Kind, id.Name, strconv.FormatInt(generation, 10))
}
