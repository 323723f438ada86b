package readiness

// The mutators that exist at startup are tracked in Tracker.mutators, a
// dataState whose kinds are "Kind/name" keys. They only count once
// RequireMutators was called: without mutation, there is nothing to wait
// for.

// RequireMutators makes the tracker wait for mutators: it is not ready
// until ExpectMutators has named those that exist and each of them is
// MutatorDone. Call it before the manager starts, when mutation is set up.
func (t *Tracker) RequireMutators() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mutators.required = true
}

// ExpectMutators records the mutators (as "Kind/name") that exist at
// startup.
func (t *Tracker) ExpectMutators(keys []string) {
	t.whileStarting(func() {
		for _, k := range keys {
			t.mutators.kinds.expected[k] = true
		}
		t.mutators.listed = true
	})
}

// MutatorDone records that a mutator was handled: loaded, refused with
// its error in its status, or deleted.
func (t *Tracker) MutatorDone(key string) {
	t.whileStarting(func() { t.mutators.kinds.done[key] = true })
}

// checkMutators is the mutator part of Check; t.mu is held.
func (t *Tracker) checkMutators() error {
	return t.mutators.check("mutators not listed yet", "mutators not loaded yet")
}
