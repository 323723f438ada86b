package readiness

// The mutators gate waits for the mutators that exist at startup, named
// "Kind/name". It only counts once RequireMutators was called: without
// mutation, there is nothing to wait for.

// RequireMutators makes the tracker wait for mutators: it is not ready
// until ExpectMutators has named those that exist and each of them is
// MutatorDone. Call it before the manager starts, when mutation is set up.
func (t *Tracker) RequireMutators() { t.require(gateMutators) }

// ExpectMutators records the mutators (as "Kind/name") that exist at
// startup.
func (t *Tracker) ExpectMutators(keys []string) { t.expect(gateMutators, keys) }

// MutatorDone records that a mutator was handled: loaded, refused with
// its error in its status, or deleted.
func (t *Tracker) MutatorDone(key string) { t.done(gateMutators, key) }
