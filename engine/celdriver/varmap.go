package celdriver

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	celtypes "github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	apiservercel "k8s.io/apiserver/pkg/cel"
)

// varNames is a set of variables a varMap serves, in declaration order:
// built once, when a template is compiled.
type varNames struct {
	typ   *celtypes.Type
	names []string
	// vars are the names' indexes in compiled.vars.
	vars  []int
	index map[string]int
}

func newVarNames(all []compiledVariable, vars []int) *varNames {
	n := &varNames{
		// As lazy.NewMapValue types its maps.
		typ:   celtypes.NewObjectType(variablesType.TypeName(), traits.IndexerType|traits.FieldTesterType|traits.IterableType),
		vars:  vars,
		index: make(map[string]int, len(vars)),
	}
	for i, j := range vars {
		n.names = append(n.names, all[j].name)
		n.index[all[j].name] = i
	}
	return n
}

// varMap is `variables` in one activation. It behaves as the apiserver's
// lazy.MapValue, which the composited compiler uses: a variable is
// resolved when first read, at most once per map, and the map's type,
// equality, iteration, size and errors are lazy.MapValue's. Unlike it, it
// is one allocation, not two maps and a closure per variable for every
// constraint, and it notes the variables read (activation.reading).
//
// It serves either a constraint's variables (shared nil): resolving one
// evaluates it, or reuses what another activation of the constraint
// evaluated, and charges its cost to act; or the variables a shared
// variable reads (shared set): resolving one takes its value in the
// review and notes it in shared.read.
type varMap struct {
	names  *varNames
	ctx    context.Context
	c      *compiled
	act    *activation
	shared *sharedValue
	slots  []varSlot
}

type varSlot struct {
	val  ref.Val
	done bool
}

var (
	_ ref.Val       = (*varMap)(nil)
	_ traits.Mapper = (*varMap)(nil)
)

func newVarMap(ctx context.Context, c *compiled, names *varNames, act *activation, shared *sharedValue) *varMap {
	return &varMap{names: names, ctx: ctx, c: c, act: act, shared: shared, slots: make([]varSlot, len(names.names))}
}

// Find resolves the variable key names.
func (m *varMap) Find(key ref.Val) (ref.Val, bool) {
	n, ok := key.(celtypes.String)
	if r := m.act.reading; ok && r != nil && !slices.Contains(*r, string(n)) {
		*r = append(*r, string(n))
	}
	if !ok {
		// lazy.MapValue's answer, from the zero String it asserted.
		return celtypes.MaybeNoSuchOverloadErr(n), true
	}
	name := string(n)
	if strings.Contains(name, "__") {
		// Escapes are all of the form __x__; without one, Unescape
		// returns the name as it is.
		if name, ok = apiservercel.Unescape(name); !ok {
			return nil, false
		}
	}
	i, ok := m.names.index[name]
	if !ok {
		return nil, false
	}
	s := &m.slots[i]
	if !s.done {
		s.val = m.resolve(m.names.vars[i])
		s.done = true
	}
	return s.val, true
}

// resolve resolves c.vars[j] in this map.
func (m *varMap) resolve(j int) ref.Val {
	v := &m.c.vars[j]
	if m.shared != nil {
		m.shared.read = append(m.shared.read, v.name)
		return m.c.shared(m.ctx, m.act.in, v).val
	}
	act := m.act
	if v.shareKey != "" {
		sv := m.c.shared(m.ctx, act.in, v)
		act.cost = addCost(act.cost, sv.cost)
		// Read what it read, so that those are evaluated and charged
		// here unless they already were.
		for _, name := range sv.read {
			m.Get(celtypes.String(name))
		}
		return sv.val
	}
	vv := &act.values[j]
	if vv.set {
		// Evaluated in another activation of the constraint: charged
		// again, with what it read, as the apiserver evaluates it again.
		act.cost = addCost(act.cost, vv.cost)
		for _, name := range vv.read {
			m.Get(celtypes.String(name))
		}
		return vv.val
	}
	outer := act.reading
	act.reading = nil
	if v.readsVariables {
		act.reading = &vv.read
	}
	vv.val, vv.cost = evalVariable(m.ctx, act, v)
	vv.set = true
	act.reading = outer
	act.cost = addCost(act.cost, vv.cost)
	return vv.val
}

// Get is Find, or an error for a variable not defined.
func (m *varMap) Get(key ref.Val) ref.Val {
	if v, found := m.Find(key); found {
		return v
	}
	return celtypes.ValOrErr(key, "no such key: %v", key)
}

// Contains is whether the variable key is defined.
func (m *varMap) Contains(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if v != nil && celtypes.IsUnknownOrError(v) {
		return v
	}
	return celtypes.Bool(found)
}

// Size is the number of variables.
func (m *varMap) Size() ref.Val { return celtypes.Int(len(m.names.names)) }

// Iterator yields the variables' values, in declaration order.
func (m *varMap) Iterator() traits.Iterator { return &varIterator{m: m} }

func (m *varMap) ConvertToNative(typeDesc reflect.Type) (any, error) {
	return nil, fmt.Errorf("disallowed conversion from %q to %q", m.names.typ.TypeName(), typeDesc.Name())
}

func (m *varMap) ConvertToType(typeVal ref.Type) ref.Val {
	switch typeVal {
	case m.names.typ:
		return m
	case celtypes.TypeType:
		return m.names.typ
	}
	return celtypes.NewErr("disallowed conversion from %q to %q", m.names.typ.TypeName(), typeVal.TypeName())
}

// Equal is identity.
func (m *varMap) Equal(other ref.Val) ref.Val {
	o, ok := other.(*varMap)
	if !ok {
		return celtypes.MaybeNoSuchOverloadErr(other)
	}
	return celtypes.Bool(m == o)
}

func (m *varMap) Type() ref.Type { return m.names.typ }

func (m *varMap) Value() any { return celtypes.NoSuchOverloadErr() }

// varIterator iterates over a varMap as lazy.MapValue's iterator does:
// yielding values, not names.
type varIterator struct {
	m *varMap
	i int
}

func (it *varIterator) ConvertToNative(typeDesc reflect.Type) (any, error) {
	return nil, fmt.Errorf("disallowed conversion to %q", typeDesc.Name())
}

func (it *varIterator) ConvertToType(typeValue ref.Type) ref.Val {
	return celtypes.NewErr("disallowed conversion o %q", typeValue.TypeName())
}

func (it *varIterator) Equal(other ref.Val) ref.Val {
	o, ok := other.(*varIterator)
	if !ok {
		return celtypes.MaybeNoSuchOverloadErr(other)
	}
	return celtypes.Bool(o == it)
}

func (it *varIterator) Type() ref.Type { return celtypes.IteratorType }
func (it *varIterator) Value() any     { return nil }

func (it *varIterator) HasNext() ref.Val { return celtypes.Bool(it.i < len(it.m.names.names)) }

func (it *varIterator) Next() ref.Val {
	v := it.m.Get(celtypes.String(it.m.names.names[it.i]))
	it.i++
	return v
}
