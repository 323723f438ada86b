package mutation

import (
	"errors"
	"fmt"

	"github.com/portcullis-dev/portcullis/mutation/path"
)

// setter assigns a mutator's value where its location ends.
type setter interface {
	// set assigns at obj[key]; changed reports whether obj changed.
	set(obj map[string]any, key string, meta objectMeta) (changed bool, err error)
}

// elementSetter is a setter whose location may end with a keyed list
// element ([name: foo]): it gives the element to put there (Assign only).
type elementSetter interface {
	element() (map[string]any, error)
}

// objectMeta is what fromMetadata reads of the mutated object.
type objectMeta struct {
	namespace, name string
}

// walker follows a location through an object and applies a setter at
// its end, creating what is missing on the way and honoring path tests.
type walker struct {
	loc    path.Path
	tester *path.Tester
	set    setter
	meta   objectMeta
}

// outcome is what a walk did: reached tells that the setter ran (the
// mutation applied, in Gatekeeper's sense), changed that the object
// changed.
type outcome struct {
	reached, changed bool
}

func (o *outcome) add(p outcome) {
	o.reached = o.reached || p.reached
	o.changed = o.changed || p.changed
}

// walk applies the setter under cur, the value at depth; it returns the
// value to store in its place when the outcome changed something.
func (w *walker) walk(cur any, depth int) (any, outcome, error) {
	n := w.loc[depth]
	if n.Kind == path.Field {
		return w.field(cur, depth, n)
	}
	list, ok := cur.([]any)
	if !ok {
		return nil, outcome{}, w.mismatch(depth-1, "a list", cur)
	}
	if depth == len(w.loc)-1 {
		return w.lastElement(list, depth, n)
	}
	if n.Glob {
		// No element can satisfy MustNotExist on a glob.
		if !w.tester.ExistsOK(depth) {
			return list, outcome{}, nil
		}
		var out outcome
		for i, elem := range list {
			v, o, err := w.walk(elem, depth+1)
			if err != nil {
				return nil, outcome{}, err
			}
			if o.changed {
				list[i] = v
			}
			out.add(o)
		}
		return list, out, nil
	}
	var out outcome
	found := false
	for i, elem := range list {
		m, ok := elem.(map[string]any)
		if !ok || !equalKey(m[n.Name], n.Value) {
			continue
		}
		found = true
		if !w.tester.ExistsOK(depth) {
			return list, outcome{}, nil
		}
		v, o, err := w.walk(m, depth+1)
		if err != nil {
			return nil, outcome{}, err
		}
		if o.changed {
			list[i] = v
		}
		out.add(o)
	}
	if found {
		return list, out, nil
	}
	if !w.tester.MissingOK(depth) {
		return list, outcome{}, nil
	}
	elem := map[string]any{n.Name: n.Value}
	v, o, err := w.walk(elem, depth+1)
	if err != nil || !o.changed {
		return list, o, err
	}
	return append(list, v), o, nil
}

// field handles a field node: cur must be an object.
func (w *walker) field(cur any, depth int, n path.Node) (any, outcome, error) {
	obj, ok := cur.(map[string]any)
	if !ok {
		return nil, outcome{}, w.mismatch(depth-1, "an object", cur)
	}
	next, exists := obj[n.Name]
	if next == nil {
		// null is no value: it is replaced as a missing field would be.
		exists = false
	}
	if exists && !w.tester.ExistsOK(depth) || !exists && !w.tester.MissingOK(depth) {
		return obj, outcome{}, nil
	}
	if depth == len(w.loc)-1 {
		changed, err := w.set.set(obj, n.Name, w.meta)
		if err != nil {
			return nil, outcome{}, fmt.Errorf("%s: %w", w.loc.String(), err)
		}
		return obj, outcome{reached: true, changed: changed}, nil
	}
	if !exists {
		if w.loc[depth+1].Kind == path.List {
			next = []any{}
		} else {
			next = map[string]any{}
		}
	}
	v, o, err := w.walk(next, depth+1)
	if err != nil {
		return nil, outcome{}, err
	}
	if o.changed {
		obj[n.Name] = v
	}
	return obj, o, nil
}

// lastElement handles a location ending with [key: value]: the element
// is replaced, or appended when there is none.
func (w *walker) lastElement(list []any, depth int, n path.Node) (any, outcome, error) {
	es, ok := w.set.(elementSetter)
	if !ok || n.Glob {
		return nil, outcome{}, errors.New("a location cannot end with a glob list selector, nor with a list selector for this kind")
	}
	value, err := es.element()
	if err != nil {
		return nil, outcome{}, err
	}
	for i, elem := range list {
		m, ok := elem.(map[string]any)
		if !ok || !equalKey(m[n.Name], n.Value) {
			continue
		}
		if !w.tester.ExistsOK(depth) {
			return list, outcome{}, nil
		}
		changed := !equalJSON(m, value)
		list[i] = value
		return list, outcome{reached: true, changed: changed}, nil
	}
	if !w.tester.MissingOK(depth) {
		return list, outcome{}, nil
	}
	return append(list, value), outcome{reached: true, changed: true}, nil
}

// mismatch reports a value of the wrong type at depth of the location.
func (w *walker) mismatch(depth int, want string, got any) error {
	return fmt.Errorf("%s: the object has %s there, not %s as the location says", w.loc[:depth+1].String(), describe(got), want)
}

// describe names the JSON type of a value.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}
