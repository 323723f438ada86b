package datasync

import (
	"slices"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	"github.com/portcullis-dev/portcullis/engine"
)

// Exclusions are the namespaces the Config's spec.match excludes, by
// process. The zero value excludes nothing.
type Exclusions struct {
	byProcess map[configv1alpha1.Process][]engine.Wildcard
}

// NewExclusions reads the exclusions of a Config's spec.match. An entry
// applies to each process it lists, "*" standing for all; an entry without
// processes excludes nothing.
func NewExclusions(match []configv1alpha1.MatchEntry) Exclusions {
	ex := Exclusions{}
	for _, m := range match {
		for _, p := range m.Processes {
			if ex.byProcess == nil {
				ex.byProcess = map[configv1alpha1.Process][]engine.Wildcard{}
			}
			for _, w := range m.ExcludedNamespaces {
				if !slices.Contains(ex.byProcess[p], engine.Wildcard(w)) {
					ex.byProcess[p] = append(ex.byProcess[p], engine.Wildcard(w))
				}
			}
		}
	}
	for p := range ex.byProcess {
		slices.Sort(ex.byProcess[p])
	}
	return ex
}

// Excludes reports whether namespace is excluded from process, by an entry
// for that process or for "*".
func (e Exclusions) Excludes(process configv1alpha1.Process, namespace string) bool {
	if namespace == "" {
		return false
	}
	for _, p := range []configv1alpha1.Process{process, configv1alpha1.ProcessAll} {
		for _, w := range e.byProcess[p] {
			if w.Matches(namespace) {
				return true
			}
		}
	}
	return false
}

// Equal reports whether both exclude the same namespaces for process.
func (e Exclusions) Equal(o Exclusions, process configv1alpha1.Process) bool {
	return slices.Equal(e.byProcess[process], o.byProcess[process]) &&
		slices.Equal(e.byProcess[configv1alpha1.ProcessAll], o.byProcess[configv1alpha1.ProcessAll])
}

// Namespaces lists the wildcards of the namespaces excluded from process,
// by entries for it or for "*", sorted.
func (e Exclusions) Namespaces(process configv1alpha1.Process) []string {
	var out []string
	for _, p := range []configv1alpha1.Process{process, configv1alpha1.ProcessAll} {
		for _, w := range e.byProcess[p] {
			if !slices.Contains(out, string(w)) {
				out = append(out, string(w))
			}
		}
	}
	slices.Sort(out)
	return out
}
