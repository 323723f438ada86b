package readiness

import (
	"errors"
	"fmt"
)

// dataState tracks the first sync of the kinds synced into data.inventory
// (and, as Tracker.mutators, the mutators that exist at startup). It only
// counts once required: without a sync set up, there is nothing to wait
// for.
type dataState struct {
	required bool
	listed   bool
	kinds    *objects
}

// RequireData makes the tracker wait for synced data: it is not ready until
// ExpectData has named the kinds to sync and each of them is DataDone. Call
// it before the manager starts, when the sync is set up.
func (t *Tracker) RequireData() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.data.required = true
}

// ExpectData records the kinds (e.g. "networking.k8s.io/v1, Kind=NetworkPolicy")
// to sync at startup. Later calls add to them until the tracker is ready.
func (t *Tracker) ExpectData(kinds []string) {
	t.whileStarting(func() {
		for _, k := range kinds {
			t.data.kinds.expected[k] = true
		}
		t.data.listed = true
	})
}

// DataDone records that a kind's first sync is complete, or that it will
// not be synced (unknown kind, or no longer listed).
func (t *Tracker) DataDone(kind string) {
	t.whileStarting(func() { t.data.kinds.done[kind] = true })
}

// checkData is the data part of Check; t.mu is held.
func (t *Tracker) checkData() error {
	return t.data.check("kinds to sync not listed yet", "synced kinds not synced yet")
}

// check reports what is missing of a requirement: notListed before its
// objects are listed, then how many are pending.
func (d *dataState) check(notListed, pending string) error {
	if !d.required {
		return nil
	}
	if !d.listed {
		return errors.New(notListed)
	}
	if p := d.kinds.pending(); len(p) > 0 {
		return fmt.Errorf("%d of %d %s, e.g. %q", len(p), len(d.kinds.expected), pending, p[0])
	}
	return nil
}
