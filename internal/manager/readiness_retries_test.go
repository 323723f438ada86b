package manager_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/controllers"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

var retriedRuns atomic.Int32

// TestReadinessRetries: a ConstraintTemplate that fails to load. With
// Gatekeeper's default --readiness-retries=0 a replica is ready with the
// error in the template's status; with -1 it is not ready while the
// template fails, however often it is retried, and is ready once the
// template is fixed.
func TestReadinessRetries(t *testing.T) {
	kind := fmt.Sprintf("K8sRetried%d", retriedRuns.Add(1))
	name := strings.ToLower(kind)
	apply(t, template(name, kind, regoTarget(brokenRego)))
	forever := startManager(t, startOpts{podID: "retries-forever", options: func(o *manager.Options) { o.ReadinessRetries = -1 }})
	once := startManager(t, startOpts{podID: "retries-default"})

	for _, r := range []*running{forever, once} {
		eventually(t, r.podID+" to report the template's error", func(ctx context.Context) (bool, error) {
			e, err := templateError(ctx, name, r.podID)
			return e != nil, err
		})
	}
	eventually(t, "the default replica to be ready", func(context.Context) (bool, error) {
		err := once.Ready()
		return err == nil, err
	})
	// Three retries, a second apart, and still not ready.
	deadline := time.Now().Add(3*controllers.ReadinessRetryDelay + time.Second)
	for time.Now().Before(deadline) {
		if err := forever.Ready(); err == nil {
			t.Fatal("--readiness-retries=-1: ready while the template fails to load")
		} else if !strings.Contains(err.Error(), "ConstraintTemplates not loaded yet") {
			t.Fatalf("--readiness-retries=-1: not ready for another reason: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fixed := testenv.Parse(t, template(name, kind, regoTarget(okRego)))
	eventually(t, "the template to be fixed", func(ctx context.Context) (bool, error) {
		cur, err := getTemplate(ctx, name)
		if err != nil {
			return false, err
		}
		fixed.SetResourceVersion(cur.GetResourceVersion())
		err = env.Client.Update(ctx, fixed)
		return err == nil, err
	})
	eventually(t, "the replica that retries forever to be ready once the template loads", func(context.Context) (bool, error) {
		err := forever.Ready()
		return err == nil, err
	})
}
