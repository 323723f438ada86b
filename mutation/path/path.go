package path

import (
	"strconv"
	"strings"
)

// Kind tells a field of an object from an element of a keyed list.
type Kind int

// Node kinds.
const (
	// Field is a field of an object: containers in spec.containers.
	Field Kind = iota
	// List is an element of a list of objects selected by a key field:
	// [name: foo], or every element with the glob [name: *].
	List
)

func (k Kind) String() string {
	if k == List {
		return "list"
	}
	return "object"
}

// Node is one step of a path.
type Node struct {
	Kind Kind
	// Name is the field's name, or the list's key field.
	Name string
	// Value is the key value a List node selects: a string or an int64.
	// It is nil when Glob is set.
	Value any
	// Glob selects every element of the list.
	Glob bool
}

// Path is a parsed location: a field first, then fields each optionally
// followed by one list selector.
type Path []Node

// String writes the path back in the location language, quoting what
// needs it.
func (p Path) String() string {
	var b strings.Builder
	for i, n := range p {
		if n.Kind == Field && i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(n.String())
	}
	return b.String()
}

// String writes one node: a field name, or [key: value].
func (n Node) String() string {
	if n.Kind == Field {
		return quote(n.Name)
	}
	var v string
	switch t := n.Value.(type) {
	case string:
		v = quote(t)
	case int64:
		v = strconv.FormatInt(t, 10)
	}
	if n.Glob {
		v = "*"
	}
	return "[" + quote(n.Name) + ": " + v + "]"
}

// HasPrefix reports whether prefix is the first nodes of p, equal node by
// node (a glob only equals a glob).
func (p Path) HasPrefix(prefix Path) bool {
	if len(prefix) > len(p) {
		return false
	}
	for i := range prefix {
		if prefix[i] != p[i] {
			return false
		}
	}
	return true
}

// Last returns the last node; the path must not be empty.
func (p Path) Last() Node { return p[len(p)-1] }

// quote double-quotes a name that would not read back as one identifier.
func quote(s string) string {
	if s != "" && !isDigit(rune(s[0])) && strings.IndexFunc(s, func(r rune) bool { return !isIdent(r) }) < 0 {
		return s
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}
