package readiness

import "testing"

func TestTrackerData(t *testing.T) {
	type step func(tr *Tracker)
	templatesDone := func(tr *Tracker) { tr.ExpectTemplates(nil) }
	tests := []struct {
		name  string
		steps []step
		ready bool
	}{
		{name: "data not required", steps: []step{templatesDone}, ready: true},
		{name: "data required, not listed", steps: []step{func(tr *Tracker) { tr.RequireData() }, templatesDone}},
		{
			name:  "nothing to sync",
			steps: []step{func(tr *Tracker) { tr.RequireData() }, templatesDone, func(tr *Tracker) { tr.ExpectData(nil) }},
			ready: true,
		},
		{
			name: "kind pending",
			steps: []step{
				func(tr *Tracker) { tr.RequireData() }, templatesDone,
				func(tr *Tracker) { tr.ExpectData([]string{"v1, Kind=Namespace", "apps/v1, Kind=Deployment"}) },
				func(tr *Tracker) { tr.DataDone("v1, Kind=Namespace") },
			},
		},
		{
			name: "every kind synced, one before expected",
			steps: []step{
				func(tr *Tracker) { tr.RequireData() }, templatesDone,
				func(tr *Tracker) { tr.DataDone("v1, Kind=Namespace") },
				func(tr *Tracker) { tr.ExpectData([]string{"v1, Kind=Namespace", "apps/v1, Kind=Deployment"}) },
				func(tr *Tracker) { tr.DataDone("apps/v1, Kind=Deployment") },
			},
			ready: true,
		},
		{
			name: "data synced but templates pending",
			steps: []step{
				func(tr *Tracker) { tr.RequireData() },
				func(tr *Tracker) { tr.ExpectData(nil) },
				func(tr *Tracker) { tr.ExpectTemplates([]string{"a"}) },
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker()
			for _, s := range tc.steps {
				s(tr)
			}
			if err := tr.Check(nil); (err == nil) != tc.ready {
				t.Fatalf("Check() = %v, want ready %v", err, tc.ready)
			}
		})
	}
}

func TestTrackerDataStaysReady(t *testing.T) {
	tr := NewTracker()
	tr.RequireData()
	tr.ExpectTemplates(nil)
	tr.ExpectData(nil)
	if err := tr.Check(nil); err != nil {
		t.Fatalf("Check() = %v, want ready", err)
	}
	tr.ExpectData([]string{"v1, Kind=Pod"}) // a kind listed later
	if err := tr.Check(nil); err != nil {
		t.Fatalf("Check() after a new kind = %v, want still ready", err)
	}
	var nilTracker *Tracker
	nilTracker.RequireData()
	nilTracker.ExpectData([]string{"x"})
	nilTracker.DataDone("x")
}

func TestTrackerMutators(t *testing.T) {
	tr := NewTracker()
	tr.ExpectTemplates(nil)
	if !tr.Ready() {
		t.Fatal("not ready without mutation")
	}
	tr = NewTracker()
	tr.ExpectTemplates(nil)
	tr.RequireMutators()
	if err := tr.Check(nil); err == nil || err.Error() != "mutators not listed yet" {
		t.Fatalf("Check = %v, want mutators not listed yet", err)
	}
	tr.MutatorDone("Assign/b") // handled before it is expected
	tr.ExpectMutators([]string{"Assign/a", "Assign/b"})
	if err := tr.Check(nil); err == nil || err.Error() != `1 of 2 mutators not loaded yet, e.g. "Assign/a"` {
		t.Fatalf("Check = %v", err)
	}
	tr.MutatorDone("Assign/a")
	if err := tr.Check(nil); err != nil {
		t.Fatalf("Check = %v, want ready", err)
	}
}
