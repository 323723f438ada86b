package mutation

import (
	"errors"
	"fmt"
	"regexp"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/mutation/path"
)

// maxNameLength is the longest mutator name, as Gatekeeper allows.
const maxNameLength = 63

// ErrNotMutator reports an object that is not a mutator.
var ErrNotMutator = errors.New("not a mutator")

// terminal is what a mutator implies of the value at the end of its
// location, for schema conflicts.
type terminal int

const (
	// terminalUnknown implies nothing (Assign): it conflicts with nothing.
	terminalUnknown terminal = iota
	// terminalSet is a list of values (ModifySet).
	terminalSet
	// terminalString is a string (AssignImage).
	terminalString
)

// Mutator is one mutator, checked and compiled: immutable, safe to share.
type Mutator struct {
	id         ID
	uid        types.UID
	generation int64
	loc        path.Path
	tester     *path.Tester
	// applyTo is nil for AssignMetadata, which applies to every kind.
	applyTo []applyTo
	match   *engine.CompiledMatch
	set     setter
	// term and mustTerminate feed the schema conflict checks: whether
	// another mutator may extend this one's location (not AssignImage's).
	term          terminal
	mustTerminate bool
	// spec is the object's spec, to tell whether an update changes anything.
	spec map[string]any
}

// ID names the mutator.
func (m *Mutator) ID() ID { return m.id }

// UID is the mutator object's UID.
func (m *Mutator) UID() types.UID { return m.uid }

// Generation is the mutator object's generation.
func (m *Mutator) Generation() int64 { return m.generation }

// Location is the mutator's parsed location.
func (m *Mutator) Location() path.Path { return m.loc }

// String names the mutator as the gatekeeper.sh/mutations annotation lists
// it: <kind>//<name>:<generation>.
func (m *Mutator) String() string { return annotation(m.id, m.generation) }

// sameAs reports whether o would mutate exactly as m does.
func (m *Mutator) sameAs(o *Mutator) bool {
	return m.id == o.id && m.generation == o.generation && m.uid == o.uid && equalJSON(m.spec, o.spec)
}

// IsMutator reports whether gvk is a mutator kind of a version served.
func IsMutator(gvk schema.GroupVersionKind) bool {
	return gvk.Group == mutationsv1.Group && slices.Contains(Kinds, gvk.Kind) && checkVersion(gvk) == nil
}

// checkVersion refuses versions the CRDs do not serve: AssignImage is
// v1alpha1 only, the others v1, v1beta1 and v1alpha1.
func checkVersion(gvk schema.GroupVersionKind) error {
	switch gvk.Version {
	case "v1alpha1":
		return nil
	case "v1", "v1beta1":
		if gvk.Kind != KindAssignImage {
			return nil
		}
	}
	if gvk.Kind == KindAssignImage {
		return fmt.Errorf("apiVersion: AssignImage is served as %s/v1alpha1 only, not %s", mutationsv1.Group, gvk.GroupVersion())
	}
	return fmt.Errorf("apiVersion: %s is served as %s/v1, v1beta1 and v1alpha1, not %s", gvk.Kind, mutationsv1.Group, gvk.GroupVersion())
}

// New checks a mutator object of any served version and compiles it. An
// error names the field at fault (spec.location: ..., spec.applyTo[0]: ...).
func New(u *unstructured.Unstructured) (*Mutator, error) {
	gvk := u.GroupVersionKind()
	if gvk.Group != mutationsv1.Group || !slices.Contains(Kinds, gvk.Kind) {
		return nil, fmt.Errorf("%w: %s", ErrNotMutator, gvk)
	}
	if err := checkVersion(gvk); err != nil {
		return nil, err
	}
	name := u.GetName()
	switch {
	case name == "":
		return nil, errors.New("metadata.name: required")
	case len(name) > maxNameLength:
		return nil, fmt.Errorf("metadata.name: %q is %d characters, the most is %d", name, len(name), maxNameLength)
	}
	raw, _, err := unstructured.NestedMap(u.Object, "spec")
	if err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	m := &Mutator{id: ID{Kind: gvk.Kind, Name: name}, uid: u.GetUID(), generation: u.GetGeneration(), spec: runtime.DeepCopyJSON(raw)}
	switch gvk.Kind {
	case KindAssign:
		var spec mutationsv1.AssignSpec
		if err := decodeSpec(raw, &spec); err != nil {
			return nil, err
		}
		err = m.buildAssign(&spec)
	case KindAssignMetadata:
		var spec mutationsv1.AssignMetadataSpec
		if err := decodeSpec(raw, &spec); err != nil {
			return nil, err
		}
		err = m.buildAssignMetadata(&spec)
	case KindModifySet:
		var spec mutationsv1.ModifySetSpec
		if err := decodeSpec(raw, &spec); err != nil {
			return nil, err
		}
		err = m.buildModifySet(&spec)
	case KindAssignImage:
		err = m.buildAssignImage(raw)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// decodeSpec decodes spec into out, naming spec in the error.
func decodeSpec(raw map[string]any, out any) error {
	return manifest.Decode(raw, out, "spec")
}

// common checks and compiles what every mutator has: the location (which
// must not be empty), the match and the path tests.
func (m *Mutator) common(location string, match *mutationsv1.Match, tests []mutationsv1.PathTest) error {
	if location == "" {
		return errors.New("spec.location: required: the path to mutate, such as spec.containers[name: *].imagePullPolicy")
	}
	loc, err := path.Parse(location)
	if err != nil {
		return fmt.Errorf("spec.location: %w", err)
	}
	m.loc = loc
	// The CRD's enums refuse these at apply; portcullis mutate, test and
	// verify read files, so they say it here.
	switch match.Source {
	case "", engine.SourceAll, engine.SourceOriginal, engine.SourceGenerated:
	default:
		return fmt.Errorf("spec.match.source: invalid value %q: must be one of All, Generated, Original", match.Source)
	}
	switch match.Scope {
	case "", "*", "Cluster", "Namespaced":
	default:
		return fmt.Errorf("spec.match.scope: invalid value %q: must be one of *, Cluster, Namespaced", match.Scope)
	}
	if m.match, err = engine.CompileMatch(engineMatch(match)); err != nil {
		return err
	}
	parsed := make([]path.Test, 0, len(tests))
	for i, t := range tests {
		sub, err := path.Parse(t.SubPath)
		if err != nil {
			return fmt.Errorf("spec.parameters.pathTests[%d].subPath: %w", i, err)
		}
		parsed = append(parsed, path.Test{SubPath: sub, Condition: path.Condition(t.Condition)})
	}
	if m.tester, err = path.NewTester(loc, parsed); err != nil {
		return fmt.Errorf("spec.parameters.%w", err)
	}
	return nil
}

// engineMatch converts a mutator's match to the engine's.
func engineMatch(m *mutationsv1.Match) engine.Match {
	out := engine.Match{
		Scope:             m.Scope,
		LabelSelector:     m.LabelSelector,
		NamespaceSelector: m.NamespaceSelector,
		Name:              engine.Wildcard(m.Name),
		Source:            m.Source,
	}
	for _, k := range m.Kinds {
		out.Kinds = append(out.Kinds, engine.MatchKinds{APIGroups: k.APIGroups, Kinds: k.Kinds})
	}
	for _, n := range m.Namespaces {
		out.Namespaces = append(out.Namespaces, engine.Wildcard(n))
	}
	for _, n := range m.ExcludedNamespaces {
		out.ExcludedNamespaces = append(out.ExcludedNamespaces, engine.Wildcard(n))
	}
	return out
}

// checkKinds refuses a mutator whose match.kinds select none of the kinds
// of its applyTo: it could never change anything.
func checkKinds(match *mutationsv1.Match, list []applyTo) error {
	if len(match.Kinds) == 0 {
		return nil
	}
	for i := range list {
		for _, g := range list[i].groups {
			for _, k := range list[i].kinds {
				for _, mk := range match.Kinds {
					if (len(mk.Kinds) == 0 || slices.Contains(mk.Kinds, "*") || slices.Contains(mk.Kinds, k)) &&
						(len(mk.APIGroups) == 0 || slices.Contains(mk.APIGroups, "*") || slices.Contains(mk.APIGroups, g)) {
						return nil
					}
				}
			}
		}
	}
	return errors.New("spec.match.kinds: selects none of the kinds of spec.applyTo: the mutator would never change anything")
}

// noMetadata refuses a location under metadata, which only AssignMetadata
// may change.
func noMetadata(kind string, loc path.Path) error {
	if loc[0].Name == "metadata" {
		return fmt.Errorf("spec.location: %s cannot change metadata: use AssignMetadata to add labels and annotations", kind)
	}
	return nil
}

// keyUnchanged refuses a location that changes a list element's key
// field, such as spec.containers[name: foo].name.
func keyUnchanged(loc path.Path) error {
	if len(loc) < 2 {
		return nil
	}
	last, prev := loc[len(loc)-1], loc[len(loc)-2]
	if prev.Kind == path.List && last.Kind == path.Field && last.Name == prev.Name {
		return fmt.Errorf("spec.location: %q changes the key field %q of the list element it selects", loc.String(), last.Name)
	}
	return nil
}

// fieldPrefix matches the field an error of New starts with.
var fieldPrefix = regexp.MustCompile(`^((?:spec|metadata|apiVersion)(?:\.[A-Za-z0-9<>]+|\[\d+\])*): `)

// Field returns the field an error of New names, such as spec.location
// or spec.applyTo[0].operations[1], and "" when it names none.
func Field(err error) string {
	if err == nil {
		return ""
	}
	m := fieldPrefix.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	return m[1]
}
