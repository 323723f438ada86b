package readiness

import (
	"strings"
	"testing"
)

// TestTrackerExpansions: with expansion on, /readyz waits for the
// ExpansionTemplates that existed at startup, as Gatekeeper's tracker does.
func TestTrackerExpansions(t *testing.T) {
	type step func(tr *Tracker)
	templatesDone := func(tr *Tracker) { tr.ExpectTemplates(nil) }
	require := func(tr *Tracker) { tr.RequireExpansions() }
	tests := []struct {
		name  string
		steps []step
		want  string // "" when ready
	}{
		{name: "not required", steps: []step{templatesDone}},
		{name: "required, not listed", steps: []step{require, templatesDone}, want: "ExpansionTemplates not listed yet"},
		{name: "none", steps: []step{require, templatesDone, func(tr *Tracker) { tr.ExpectExpansions(nil) }}},
		{
			name: "one pending",
			steps: []step{require, templatesDone,
				func(tr *Tracker) { tr.ExpectExpansions([]string{"expand-deployments", "expand-jobs"}) },
				func(tr *Tracker) { tr.ExpansionDone("expand-jobs") }},
			want: `1 of 2 ExpansionTemplates not loaded yet, e.g. "expand-deployments"`,
		},
		{
			name: "all done, one before it was expected",
			steps: []step{require, templatesDone,
				func(tr *Tracker) { tr.ExpansionDone("expand-jobs") },
				func(tr *Tracker) { tr.ExpectExpansions([]string{"expand-jobs"}) }},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker()
			for _, s := range tc.steps {
				s(tr)
			}
			err := tr.Check(nil)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Check() = %v, want %q", err, tc.want)
			}
		})
	}
	var nilTracker *Tracker
	nilTracker.RequireExpansions()
	nilTracker.ExpectExpansions([]string{"x"})
	nilTracker.ExpansionDone("x")
}
