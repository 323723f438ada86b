package mutation

import (
	"maps"
	"slices"
	"strings"

	"github.com/portcullis-dev/portcullis/mutation/path"
)

// Mutators with an applyTo imply part of the schema of the kinds they
// change: spec.containers[name: foo].image says that spec is an object,
// containers a list of objects keyed by name, and image something. Two
// mutators on the same kind and operation that disagree (containers an
// object for one, a list for the other; a list keyed by name for one, by
// image for the other; a string AssignImage sets with fields below it)
// would fight over the object, so both are left out until one goes.

// nodeType is the type a location implies for a value.
type nodeType int

const (
	typeUnknown nodeType = iota // Assign's value: any type, conflicts with nothing
	typeObject
	typeList
	typeSet    // ModifySet's list of values
	typeString // AssignImage's image
)

// snode is a node of the schema implied by the mutators of one kind and
// operation.
type snode struct {
	refs     map[ID]bool
	mustTerm map[ID]bool
	// children by key (field name, or list key field), then by type.
	children map[string]map[nodeType]*snode
}

func newSnode() *snode {
	return &snode{refs: map[ID]bool{}, mustTerm: map[ID]bool{}, children: map[string]map[nodeType]*snode{}}
}

// add records a mutator's location below n.
func (n *snode) add(m *Mutator, loc path.Path) {
	n.refs[m.id] = true
	if len(loc) == 0 {
		if m.mustTerminate {
			n.mustTerm[m.id] = true
		}
		return
	}
	t := termType(m.term)
	if len(loc) > 1 {
		t = typeObject
		if loc[1].Kind == path.List {
			t = typeList
		}
	}
	byType := n.children[loc[0].Name]
	if byType == nil {
		byType = map[nodeType]*snode{}
		n.children[loc[0].Name] = byType
	}
	c := byType[t]
	if c == nil {
		c = newSnode()
		byType[t] = c
	}
	c.add(m, loc[1:])
}

func termType(t terminal) nodeType {
	switch t {
	case terminalSet:
		return typeSet
	case terminalString:
		return typeString
	}
	return typeUnknown
}

// conflicts appends every group of mutators in conflict below n.
func (n *snode) conflicts(groups []map[ID]bool) []map[ID]bool {
	for _, key := range slices.Sorted(maps.Keys(n.children)) {
		byType := n.children[key]
		known := 0
		for t := range byType {
			if t != typeUnknown {
				known++
			}
		}
		group := map[ID]bool{}
		mustTerm, grandchildren := false, false
		for t, c := range byType {
			mustTerm = mustTerm || len(c.mustTerm) > 0
			grandchildren = grandchildren || len(c.children) > 0
			if t == typeUnknown {
				continue
			}
			// Two types for one value, or a list keyed two ways.
			if known > 1 || t == typeList && len(c.children) > 1 {
				maps.Copy(group, c.refs)
			}
		}
		// A location that must end here (AssignImage's string) extended
		// by another.
		if mustTerm && grandchildren {
			for _, c := range byType {
				maps.Copy(group, c.mustTerm)
				for _, gc := range c.children {
					for _, g := range gc {
						maps.Copy(group, g.refs)
					}
				}
			}
		}
		if len(group) > 0 {
			groups = append(groups, group)
		}
		for _, c := range byType {
			groups = c.conflicts(groups)
		}
	}
	return groups
}

// findConflicts returns, for each mutator in conflict, the mutators it is
// in conflict with, itself included, sorted.
func findConflicts(mutators []*Mutator) map[ID][]ID {
	roots := map[binding]*snode{}
	for _, m := range mutators {
		if m.applyTo == nil {
			continue
		}
		for _, b := range bindings(m.applyTo) {
			r := roots[b]
			if r == nil {
				r = newSnode()
				roots[b] = r
			}
			r.add(m, m.loc)
		}
	}
	sets := map[ID]map[ID]bool{}
	for _, r := range roots {
		for _, group := range r.conflicts(nil) {
			for id := range group {
				if sets[id] == nil {
					sets[id] = map[ID]bool{}
				}
				maps.Copy(sets[id], group)
			}
		}
	}
	out := make(map[ID][]ID, len(sets))
	for id, set := range sets {
		out[id] = slices.SortedFunc(maps.Keys(set), ID.compare)
	}
	return out
}

// ConflictType is the type of a conflict's error in status.byPod, as
// Gatekeeper writes it.
const ConflictType = "ErrConflictingSchema"

// ConflictError says which mutators disagree on a schema.
type ConflictError struct {
	IDs []ID
}

func (e *ConflictError) Error() string {
	names := make([]string, len(e.IDs))
	for i, id := range e.IDs {
		names[i] = id.String()
	}
	return "the following mutators have conflicting schemas: [" + strings.Join(names, ",") + "]"
}
