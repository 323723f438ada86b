package mutation

import (
	"errors"
	"fmt"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
)

// Operation is the admission operation an object is mutated for.
type Operation string

// Operations. The mutating webhook handles CREATE and UPDATE; None is
// for objects mutated outside admission (expansion, `portcullis mutate`),
// to which only mutators that apply to every operation apply.
const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
	None   Operation = ""
)

// Supported are the operations the mutating webhook handles.
var Supported = []Operation{Create, Update}

// applyTo is one spec.applyTo entry, checked.
type applyTo struct {
	groups, versions, kinds []string
	// ops are the operations listed; nil means every supported one.
	ops []Operation
}

// parseApplyTo checks spec.applyTo: required, every entry with groups,
// versions and kinds, and operations CREATE, UPDATE or * alone, without
// repeats.
func parseApplyTo(list []mutationsv1.MutationApplyTo) ([]applyTo, error) {
	if len(list) == 0 {
		return nil, errors.New("spec.applyTo: required: list the groups, versions and kinds the mutator changes")
	}
	out := make([]applyTo, 0, len(list))
	var errs []error
	for i, a := range list {
		field := fmt.Sprintf("spec.applyTo[%d]", i)
		if len(a.Groups) == 0 || len(a.Versions) == 0 || len(a.Kinds) == 0 {
			errs = append(errs, fmt.Errorf("%s: groups, versions and kinds must all be given", field))
		}
		for _, list := range [][]string{a.Groups, a.Versions, a.Kinds} {
			if slices.Contains(list, "*") {
				errs = append(errs, fmt.Errorf("%s: globs are not accepted in applyTo: name each group, version and kind", field))
				break
			}
		}
		at := applyTo{groups: a.Groups, versions: a.Versions, kinds: a.Kinds}
		all := false
		for j, op := range a.Operations {
			f := fmt.Sprintf("%s.operations[%d]", field, j)
			switch {
			case slices.Contains(a.Operations[:j], op):
				errs = append(errs, fmt.Errorf("%s: %q is listed twice", f, op))
			case op == admissionregistrationv1.OperationAll:
				all = true
			case op == admissionregistrationv1.Create || op == admissionregistrationv1.Update:
				at.ops = append(at.ops, Operation(op))
			default:
				errs = append(errs, fmt.Errorf("%s: %q is not one of CREATE, UPDATE, * (the mutating webhook handles only those)", f, op))
			}
		}
		if all && len(a.Operations) > 1 {
			errs = append(errs, fmt.Errorf("%s.operations: \"*\" must not be combined with other operations", field))
		}
		if all {
			at.ops = nil
		}
		out = append(out, at)
	}
	return out, errors.Join(errs...)
}

// matches reports whether the entry names gvk and applies to op.
func (a *applyTo) matches(gvk schema.GroupVersionKind, op Operation) bool {
	return slices.Contains(a.kinds, gvk.Kind) && slices.Contains(a.groups, gvk.Group) &&
		slices.Contains(a.versions, gvk.Version) && a.appliesTo(op)
}

// appliesTo reports whether the entry applies to op. With no operation
// (None), only an entry applying to every supported one does.
func (a *applyTo) appliesTo(op Operation) bool {
	if a.ops == nil {
		return op == None || slices.Contains(Supported, op)
	}
	if op == None {
		for _, s := range Supported {
			if !slices.Contains(a.ops, s) {
				return false
			}
		}
		return true
	}
	return slices.Contains(a.ops, op)
}

// operations are the supported operations the entry applies to.
func (a *applyTo) operations() []Operation {
	if a.ops == nil {
		return Supported
	}
	return a.ops
}

// binding is a kind and an operation: the scope of an implied schema.
type binding struct {
	gvk schema.GroupVersionKind
	op  Operation
}

// bindings lists every kind and operation the entries apply to.
func bindings(list []applyTo) []binding {
	var out []binding
	for i := range list {
		a := &list[i]
		for _, g := range a.groups {
			for _, v := range a.versions {
				for _, k := range a.kinds {
					for _, op := range a.operations() {
						b := binding{gvk: schema.GroupVersionKind{Group: g, Version: v, Kind: k}, op: op}
						if !slices.Contains(out, b) {
							out = append(out, b)
						}
					}
				}
			}
		}
	}
	return out
}
