package readiness

import "testing"

func TestTracker(t *testing.T) {
	type step func(tr *Tracker)
	tests := []struct {
		name  string
		steps []step
		ready bool
	}{
		{name: "nothing listed", ready: false},
		{name: "no templates", steps: []step{func(tr *Tracker) { tr.ExpectTemplates(nil) }}, ready: true},
		{
			name: "template pending",
			steps: []step{
				func(tr *Tracker) { tr.ExpectTemplates([]string{"a", "b"}) },
				func(tr *Tracker) { tr.TemplateDone("a") },
			},
		},
		{
			name: "templates done before listed",
			steps: []step{
				func(tr *Tracker) { tr.TemplateDone("a") },
				func(tr *Tracker) { tr.ExpectTemplates([]string{"a"}) },
			},
			ready: true,
		},
		{
			name: "constraint pending",
			steps: []step{
				func(tr *Tracker) { tr.ExpectTemplates([]string{"a"}) },
				func(tr *Tracker) { tr.ExpectConstraints("A", []string{"x", "y"}) },
				func(tr *Tracker) { tr.TemplateDone("a") },
				func(tr *Tracker) { tr.ConstraintDone("A", "x") },
			},
		},
		{
			name: "constraints done, one before expected",
			steps: []step{
				func(tr *Tracker) { tr.ExpectTemplates([]string{"a"}) },
				func(tr *Tracker) { tr.ConstraintDone("A", "y") },
				func(tr *Tracker) { tr.ExpectConstraints("A", []string{"x", "y"}) },
				func(tr *Tracker) { tr.TemplateDone("a") },
				func(tr *Tracker) { tr.ConstraintDone("A", "x") },
			},
			ready: true,
		},
		{
			name: "template deleted cancels its constraints",
			steps: []step{
				func(tr *Tracker) { tr.ExpectTemplates([]string{"a"}) },
				func(tr *Tracker) { tr.ExpectConstraints("A", []string{"x"}) },
				func(tr *Tracker) { tr.CancelConstraints("A") },
				func(tr *Tracker) { tr.TemplateDone("a") },
			},
			ready: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker()
			for _, s := range tc.steps {
				s(tr)
			}
			if got := tr.Ready(); got != tc.ready {
				t.Errorf("Ready() = %t, want %t (Check: %v)", got, tc.ready, tr.Check(nil))
			}
		})
	}
}

func TestTrackerLatches(t *testing.T) {
	tr := NewTracker()
	tr.ExpectTemplates([]string{"a"})
	tr.TemplateDone("a")
	if !tr.Ready() {
		t.Fatalf("not ready: %v", tr.Check(nil))
	}
	tr.ExpectTemplates([]string{"b"})
	tr.ExpectConstraints("B", []string{"x"})
	if !tr.Ready() {
		t.Errorf("ready tracker became unready: %v", tr.Check(nil))
	}
}

func TestNilTracker(t *testing.T) {
	var tr *Tracker
	tr.ExpectTemplates([]string{"a"})
	tr.TemplateDone("a")
	tr.ExpectConstraints("A", []string{"x"})
	tr.ConstraintDone("A", "x")
	tr.CancelConstraints("A")
	if !tr.Ready() {
		t.Error("nil tracker is not ready")
	}
}
