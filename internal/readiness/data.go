package readiness

// The data gate waits for the first sync of the kinds synced into
// data.inventory. It only counts once RequireData was called: without a
// sync set up, there is nothing to wait for.

// RequireData makes the tracker wait for synced data: it is not ready until
// ExpectData has named the kinds to sync and each of them is DataDone. Call
// it before the manager starts, when the sync is set up.
func (t *Tracker) RequireData() { t.require(gateData) }

// ExpectData records the kinds (e.g. "networking.k8s.io/v1, Kind=NetworkPolicy")
// to sync at startup. Later calls add to them until the tracker is ready.
func (t *Tracker) ExpectData(kinds []string) { t.expect(gateData, kinds) }

// DataDone records that a kind's first sync is complete, or that it will
// not be synced (unknown kind, or no longer listed).
func (t *Tracker) DataDone(kind string) { t.done(gateData, kind) }
