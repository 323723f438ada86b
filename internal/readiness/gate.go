package readiness

import "fmt"

// gate is a set of objects the tracker waits for only once required: until
// they are listed, then until each is done.
type gate struct {
	required bool
	listed   bool
	names    *objects
	// notListed and pending word Check's answer while waiting.
	notListed, pending string
}

// gateID names one of the tracker's gates.
type gateID int

const (
	gateData gateID = iota
	gateExpansions
	gateMutators
)

func newGates() []*gate {
	return []*gate{
		gateData:       {names: newObjects(), notListed: "kinds to sync not listed yet", pending: "synced kinds not synced yet"},
		gateExpansions: {names: newObjects(), notListed: "ExpansionTemplates not listed yet", pending: "ExpansionTemplates not loaded yet"},
		gateMutators:   {names: newObjects(), notListed: "mutators not listed yet", pending: "mutators not loaded yet"},
	}
}

// require makes the tracker wait for a gate.
func (t *Tracker) require(id gateID) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gates[id].required = true
}

// expect adds names to those a gate waits for and marks it listed. Later
// calls add to them until the tracker is ready.
func (t *Tracker) expect(id gateID, names []string) {
	t.whileStarting(func() {
		g := t.gates[id]
		for _, n := range names {
			g.names.expected[n] = true
		}
		g.listed = true
	})
}

// done records that one of a gate's names was handled.
func (t *Tracker) done(id gateID, name string) {
	t.whileStarting(func() { t.gates[id].names.done[name] = true })
}

// checkGates is the gates' part of Check; t.mu is held.
func (t *Tracker) checkGates() error {
	for _, g := range t.gates {
		if !g.required {
			continue
		}
		if !g.listed {
			return fmt.Errorf("%s", g.notListed)
		}
		if p := g.names.pending(); len(p) > 0 {
			return fmt.Errorf("%d of %d %s, e.g. %q", len(p), len(g.names.expected), g.pending, p[0])
		}
	}
	return nil
}
