package exemption

import "strings"

// Namespaces are exempt namespaces, by exact name, prefix or suffix. The
// nil *Namespaces exempts none.
type Namespaces struct {
	names              map[string]bool
	prefixes, suffixes []string
}

// NewNamespaces builds Namespaces; empty entries are ignored.
func NewNamespaces(names, prefixes, suffixes []string) *Namespaces {
	e := &Namespaces{names: map[string]bool{}}
	for _, n := range names {
		if n != "" {
			e.names[n] = true
		}
	}
	e.prefixes = nonEmpty(prefixes)
	e.suffixes = nonEmpty(suffixes)
	return e
}

func nonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Exempt reports whether namespace ns is exempt. The empty namespace
// (cluster-scoped objects) never is.
func (e *Namespaces) Exempt(ns string) bool {
	if e == nil || ns == "" {
		return false
	}
	if e.names[ns] {
		return true
	}
	for _, p := range e.prefixes {
		if strings.HasPrefix(ns, p) {
			return true
		}
	}
	for _, s := range e.suffixes {
		if strings.HasSuffix(ns, s) {
			return true
		}
	}
	return false
}
