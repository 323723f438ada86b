package readiness

import "fmt"

// expansionState tracks the ExpansionTemplates that existed at startup, as
// Gatekeeper's readiness tracker does when expansion is enabled: until they
// are loaded, the webhook would let through workloads whose Pods they
// would have it refuse. It only counts once RequireExpansions was called.
type expansionState struct {
	required bool
	listed   bool
	names    *objects
}

// RequireExpansions makes the tracker wait for ExpansionTemplates: it is
// not ready until ExpectExpansions has named those that exist and each is
// ExpansionDone. Call it before the manager starts, when expansion is on.
func (t *Tracker) RequireExpansions() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expansions.required = true
}

// ExpectExpansions records the ExpansionTemplates that exist at startup.
func (t *Tracker) ExpectExpansions(names []string) {
	t.whileStarting(func() {
		for _, n := range names {
			t.expansions.names.expected[n] = true
		}
		t.expansions.listed = true
	})
}

// ExpansionDone records that an ExpansionTemplate was handled: loaded, or
// refused with its error in its status, or gone.
func (t *Tracker) ExpansionDone(name string) {
	t.whileStarting(func() { t.expansions.names.done[name] = true })
}

// checkExpansions is the ExpansionTemplate part of Check; t.mu is held.
func (t *Tracker) checkExpansions() error {
	if !t.expansions.required {
		return nil
	}
	if !t.expansions.listed {
		return fmt.Errorf("ExpansionTemplates not listed yet")
	}
	if p := t.expansions.names.pending(); len(p) > 0 {
		return fmt.Errorf("%d of %d ExpansionTemplates not loaded yet, e.g. %q", len(p), len(t.expansions.names.expected), p[0])
	}
	return nil
}
