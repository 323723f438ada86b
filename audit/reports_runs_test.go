package audit_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// afterReviewer is the shared engine calling after once, after the first
// review of the object ns/name.
type afterReviewer struct {
	*engine.Engine
	ns, name string
	once     sync.Once
	after    func(ctx context.Context)
}

func (a *afterReviewer) Review(ctx context.Context, in engine.ReviewInput, ep string) (*engine.Response, error) {
	resp, err := a.Engine.Review(ctx, in, ep)
	if o, ok := in.(*engine.Object); ok && o.Object.GetNamespace() == a.ns && o.Object.GetName() == a.name {
		a.once.Do(func() { a.after(ctx) })
	}
	return resp, err
}

// TestReportsConstraintDeletedDuringRun: the results of a constraint
// deleted during a run, after they were found, are not written into the
// reports, as its status is not written; the other constraints' are.
func TestReportsConstraintDeletedDuringRun(t *testing.T) {
	const ns = "rep-deleted-constraint"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "bad", 2, nil)
	apply(t, requiredLabel("ReportsDeletedMidRun"))
	cs := apply(t, constraint("ReportsDeletedMidRun", "kept", ns, "deny")+"---\n"+constraint("ReportsDeletedMidRun", "deleted", ns, "warn"))
	for _, c := range cs {
		waitEnforced(t, c)
	}
	r := &afterReviewer{Engine: mgr.Engine(), ns: ns, name: "bad-0001", after: func(ctx context.Context) {
		if err := env.Client.Delete(ctx, cs[1]); err != nil {
			t.Errorf("deleting the constraint: %v", err)
		}
	}}
	rep := runOnce(t, newAuditor(t, reportOptions(t), r))
	if cr := rep.Constraint("ReportsDeletedMidRun", "deleted"); cr == nil || cr.Skipped != audit.SkippedDeleted || cr.Found == 0 {
		t.Fatalf("report of the deleted constraint: %+v, want violations found, then skipped: %s", cr, audit.SkippedDeleted)
	}
	res := only(t, nsReports(t, ns), ns)
	if got := strings.Join(subjects(res.results, "ReportsDeletedMidRun/deleted"), ","); got != "" {
		t.Errorf("the report holds results of the constraint deleted during the run: %s", got)
	}
	if got := strings.Join(subjects(res.results, "ReportsDeletedMidRun/kept"), ","); got != ns+"/bad-0000,"+ns+"/bad-0001" {
		t.Errorf("results of the kept constraint: %s", got)
	}
	checkSummaries(t, map[string]report{ns: res})
}
