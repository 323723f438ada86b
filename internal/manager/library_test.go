package manager_test

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestGatekeeperLibrary applies every gatekeeper-library template at once,
// then the first sample constraint of each: every template must be created
// and Ready, and every constraint enforced. The time they take is logged.
func TestGatekeeperLibrary(t *testing.T) {
	policies := testenv.Library(t)
	for _, p := range policies {
		if p.Constraint == nil {
			t.Fatalf("%s: no samples/*/constraint.yaml", p.Files.Dir)
		}
	}
	m := startManager(t, startOpts{podID: "pod-library"})
	begin := time.Now()
	for _, p := range policies {
		create(t, p.Template)
	}
	for _, p := range policies {
		create(t, p.Constraint)
	}
	for _, p := range policies {
		eventually(t, p.Template.GetName()+" to be created and Ready", func(ctx context.Context) (bool, error) {
			return templateLoaded(ctx, p.Template.GetName(), m.podID)
		})
	}
	templatesReady := time.Since(begin)
	for _, p := range policies {
		c := p.Constraint
		eventually(t, c.GetKind()+" "+c.GetName()+" to be enforced", func(ctx context.Context) (bool, error) {
			return constraintEnforced(ctx, c.GetKind(), c.GetName(), m.podID)
		})
	}
	allReady := time.Since(begin)
	tmpls, cons := m.Engine().Counts()
	if tmpls != len(policies) || cons != len(policies) {
		t.Errorf("engine holds %d templates and %d constraints, want %d of each", tmpls, cons, len(policies))
	}
	t.Logf("%d gatekeeper-library templates created and Ready in %s; with one sample constraint each enforced in %s",
		len(policies), templatesReady.Round(time.Millisecond), allReady.Round(time.Millisecond))

	// A restarted manager rebuilds all of it before it is ready.
	m.stop()
	restarted := time.Now()
	m = startManager(t, startOpts{podID: "pod-library"})
	eventually(t, "the restarted manager to be ready", func(context.Context) (bool, error) {
		return m.Ready() == nil, m.Ready()
	})
	t.Logf("A restarted manager was ready with the %d templates and %d constraints in %s",
		len(policies), len(policies), time.Since(restarted).Round(time.Millisecond))
	if tmpls, cons := m.Engine().Counts(); tmpls != len(policies) || cons != len(policies) {
		t.Errorf("after the restart, the engine holds %d templates and %d constraints when ready, want %d of each", tmpls, cons, len(policies))
	}
}
