package expansion

import "sort"

// findCycles returns the templates that are part of a cycle, each with the
// sorted names of the templates of its cycle. There is an edge from A to B
// when A generates a kind B expands; a cycle is a strongly connected
// component of more than one template (a template that expands its own
// output is refused by Validate). Tarjan's algorithm, over templates by
// name so that the result does not depend on map order.
func findCycles(templates map[string]*Template) map[string][]string {
	names := make([]string, 0, len(templates))
	for n := range templates {
		names = append(names, n)
	}
	sort.Strings(names)
	expanders := map[string][]string{} // kind (GVK string) -> templates expanding it
	for _, n := range names {
		for _, gvk := range templates[n].applyToGVKs() {
			k := gvk.String()
			expanders[k] = append(expanders[k], n)
		}
	}
	t := &tarjan{
		edges: func(n string) []string { return expanders[templates[n].GeneratedGVK.String()] },
		index: map[string]int{}, low: map[string]int{}, onStack: map[string]bool{},
		out: map[string][]string{},
	}
	for _, n := range names {
		if _, seen := t.index[n]; !seen {
			t.visit(n)
		}
	}
	return t.out
}

// tarjan is the state of Tarjan's strongly connected components algorithm.
// Its recursion is as deep as the longest chain of templates, which the
// kinds of a cluster bound.
type tarjan struct {
	edges   func(string) []string
	next    int
	index   map[string]int
	low     map[string]int
	stack   []string
	onStack map[string]bool
	out     map[string][]string
}

func (t *tarjan) visit(n string) {
	t.index[n], t.low[n] = t.next, t.next
	t.next++
	t.stack = append(t.stack, n)
	t.onStack[n] = true
	for _, m := range t.edges(n) {
		if _, seen := t.index[m]; !seen {
			t.visit(m)
			t.low[n] = min(t.low[n], t.low[m])
		} else if t.onStack[m] {
			t.low[n] = min(t.low[n], t.index[m])
		}
	}
	if t.low[n] != t.index[n] {
		return
	}
	var scc []string
	for {
		m := t.stack[len(t.stack)-1]
		t.stack = t.stack[:len(t.stack)-1]
		t.onStack[m] = false
		scc = append(scc, m)
		if m == n {
			break
		}
	}
	if len(scc) < 2 {
		return
	}
	sort.Strings(scc)
	for _, m := range scc {
		t.out[m] = scc
	}
}
