package readiness

// The expansions gate waits for the ExpansionTemplates that existed at
// startup, as Gatekeeper's readiness tracker does when expansion is on:
// until they are loaded, the webhook would let through workloads whose Pods
// they would have it refuse.

// RequireExpansions makes the tracker wait for ExpansionTemplates: it is
// not ready until ExpectExpansions has named those that exist and each is
// ExpansionDone. Call it before the manager starts, when expansion is on.
func (t *Tracker) RequireExpansions() { t.require(gateExpansions) }

// ExpectExpansions records the ExpansionTemplates that exist at startup.
func (t *Tracker) ExpectExpansions(names []string) { t.expect(gateExpansions, names) }

// ExpansionDone records that an ExpansionTemplate was handled: loaded, or
// refused with its error in its status, or gone.
func (t *Tracker) ExpansionDone(name string) { t.done(gateExpansions, name) }
