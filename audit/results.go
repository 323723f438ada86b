package audit

import (
	"container/heap"
	"sort"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// MaxMessageLength is the length status.violations[].message is cut to, as
// Gatekeeper does; a cut message ends with "...".
const MaxMessageLength = 256

// StatusViolation is one entry of a constraint's status.violations, with
// Gatekeeper's field names.
type StatusViolation struct {
	Group             string `json:"group"`
	Version           string `json:"version"`
	Kind              string `json:"kind"`
	Namespace         string `json:"namespace,omitempty"`
	Name              string `json:"name"`
	Message           string `json:"message"`
	EnforcementAction string `json:"enforcementAction"`
	// EnforcementActions are the actions a scoped constraint applies at
	// the audit; set only when EnforcementAction is "scoped".
	EnforcementActions []string `json:"enforcementActions,omitempty"`
}

// groupKind is the kind of the object that violates.
func (v *StatusViolation) groupKind() schema.GroupKind {
	return schema.GroupKind{Group: v.Group, Kind: v.Kind}
}

// lessViolation orders violations by group, version, kind, namespace, name,
// message and action: the status keeps the first ViolationsLimit of them, so
// the subset does not change from run to run while the violations do not.
func lessViolation(a, b *StatusViolation) bool {
	for _, p := range [...][2]string{
		{a.Group, b.Group}, {a.Version, b.Version}, {a.Kind, b.Kind}, {a.Namespace, b.Namespace},
		{a.Name, b.Name}, {a.Message, b.Message}, {a.EnforcementAction, b.EnforcementAction},
	} {
		if p[0] != p[1] {
			return p[0] < p[1]
		}
	}
	return strings.Join(a.EnforcementActions, ",") < strings.Join(b.EnforcementActions, ",")
}

// key identifies v: equal keys, equal violations.
func (v *StatusViolation) key() string {
	return strings.Join(append([]string{v.Group, v.Version, v.Kind, v.Namespace, v.Name, v.Message, v.EnforcementAction},
		v.EnforcementActions...), "\x00")
}

// truncateMessage cuts msg to MaxMessageLength bytes, on a rune boundary,
// ending it with "...".
func truncateMessage(msg string) string {
	if len(msg) <= MaxMessageLength {
		return msg
	}
	cut := MaxMessageLength - len("...")
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "..."
}

// topN keeps the n smallest violations in lessViolation order: a max-heap,
// so memory is bounded by n however many violations are pushed.
type topN struct {
	n     int
	items []*StatusViolation
}

func (t *topN) Len() int           { return len(t.items) }
func (t *topN) Less(i, j int) bool { return lessViolation(t.items[j], t.items[i]) }
func (t *topN) Swap(i, j int)      { t.items[i], t.items[j] = t.items[j], t.items[i] }
func (t *topN) Push(x any)         { t.items = append(t.items, x.(*StatusViolation)) }
func (t *topN) Pop() any {
	last := t.items[len(t.items)-1]
	t.items = t.items[:len(t.items)-1]
	return last
}

// add offers v; it is kept if it is among the n smallest so far.
func (t *topN) add(v *StatusViolation) {
	if t.n <= 0 {
		return
	}
	if len(t.items) < t.n {
		heap.Push(t, v)
		return
	}
	if lessViolation(v, t.items[0]) {
		t.items[0] = v
		heap.Fix(t, 0)
	}
}

// sorted returns the kept violations in order.
func (t *topN) sorted() []StatusViolation {
	out := make([]StatusViolation, 0, len(t.items))
	for _, v := range t.items {
		out = append(out, *v)
	}
	sortViolations(out)
	return out
}

func sortViolations(vs []StatusViolation) {
	sort.Slice(vs, func(i, j int) bool { return lessViolation(&vs[i], &vs[j]) })
}

// constraintKey names a constraint: constraints are cluster-scoped.
type constraintKey struct {
	Kind string
	Name string
}

func (k constraintKey) String() string { return k.Kind + "/" + k.Name }

// tally is what a run found for one constraint.
type tally struct {
	total  int
	byKind map[schema.GroupKind]int
	top    topN
}

func newTally(limit int) *tally {
	return &tally{byKind: map[schema.GroupKind]int{}, top: topN{n: limit}}
}

func (t *tally) add(v *StatusViolation) {
	t.total++
	t.byKind[v.groupKind()]++
	t.top.add(v)
}

// merge adds o into t.
func (t *tally) merge(o *tally) {
	t.total += o.total
	for gk, n := range o.byKind {
		t.byKind[gk] += n
	}
	for _, v := range o.top.items {
		t.top.add(v)
	}
}

// seriesKey is one series of portcullis_audit_violations: a constraint,
// an action that applies at the audit, and a namespace ("" for
// cluster-scoped objects).
type seriesKey struct {
	constraint constraintKey
	action     string
	namespace  string
}

// results are the tallies of one worker, or of the whole run once merged.
type results struct {
	limit    int
	tallies  map[constraintKey]*tally
	byAction map[string]int
	series   map[seriesKey]int
}

func newResults(limit int) *results {
	return &results{limit: limit, tallies: map[constraintKey]*tally{}, byAction: map[string]int{}, series: map[seriesKey]int{}}
}

func (r *results) add(k constraintKey, v *StatusViolation, actions []string) {
	t := r.tallies[k]
	if t == nil {
		t = newTally(r.limit)
		r.tallies[k] = t
	}
	t.add(v)
	for _, a := range actions {
		r.byAction[a]++
		r.series[seriesKey{constraint: k, action: a, namespace: v.Namespace}]++
	}
}

func (r *results) merge(o *results) {
	for k, ot := range o.tallies {
		t := r.tallies[k]
		if t == nil {
			t = newTally(r.limit)
			r.tallies[k] = t
		}
		t.merge(ot)
	}
	for a, n := range o.byAction {
		r.byAction[a] += n
	}
	for s, n := range o.series {
		r.series[s] += n
	}
}
