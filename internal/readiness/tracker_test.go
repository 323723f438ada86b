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

// TestTrackerRetries: with --readiness-retries N a template or constraint
// that fails to load is retried N times before it counts as done; with -1
// it is retried until it loads, and once ready nothing is retried.
func TestTrackerRetries(t *testing.T) {
	for _, c := range []struct {
		retries, failures int
		ready             bool
	}{
		{0, 1, true}, {2, 1, false}, {2, 2, false}, {2, 3, true}, {-1, 100, false},
	} {
		tr := NewTracker()
		tr.SetRetries(c.retries)
		tr.ExpectTemplates([]string{"a"})
		tr.ExpectConstraints("A", []string{"x"})
		tr.ConstraintDone("A", "x")
		retried := 0
		for range c.failures {
			if tr.TemplateFailed("a") {
				retried++
			}
		}
		if tr.Ready() != c.ready {
			t.Errorf("retries %d, %d failures: ready %t, want %t", c.retries, c.failures, tr.Ready(), c.ready)
		}
		if want := c.failures - map[bool]int{true: 1, false: 0}[c.ready]; retried != want {
			t.Errorf("retries %d, %d failures: %d retried, want %d", c.retries, c.failures, retried, want)
		}
		if !c.ready {
			tr.TemplateDone("a") // it loaded at last
			if !tr.Ready() {
				t.Errorf("retries %d: not ready once the template loaded", c.retries)
			}
		}
		if tr.TemplateFailed("a") || tr.ConstraintFailed("A", "x") {
			t.Errorf("retries %d: a failure after ready is to be retried", c.retries)
		}
	}
	tr := NewTracker()
	tr.SetRetries(1)
	tr.ExpectTemplates(nil)
	tr.ExpectConstraints("A", []string{"x"})
	if !tr.ConstraintFailed("A", "x") || tr.Ready() {
		t.Error("a constraint's first failure with 1 retry: not retried, or ready")
	}
	if tr.ConstraintFailed("A", "x") || !tr.Ready() {
		t.Error("a constraint's second failure with 1 retry: retried, or not ready")
	}
}
