package e2e_test

import (
	"os"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/manager/managertest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// waitTimeout bounds every poll; polls end as soon as their condition holds.
const waitTimeout = 2 * time.Minute

// poll is how the tests wait for a condition.
var poll = testenv.Poll{Timeout: waitTimeout, Interval: 250 * time.Millisecond}

// podID is the manager's replica ID in status.byPod.
const podID = "e2e"

var (
	env *testenv.Env
	mgr *manager.Manager
)

// TestMain starts one control plane and the manager with its webhook;
// without the control plane's binaries (outside CI) the tests skip. Set
// PORTCULLIS_TEST_LOG=1 to see the manager's logs.
func TestMain(m *testing.M) {
	testenv.Logging(nil)
	os.Exit(testenv.Main{
		What:       "the end-to-end tests",
		RunWithout: true,
		Start: func(e *testenv.Env) (func() error, error) {
			env = e
			return startManager()
		},
	}.Run(m))
}

// startManager runs the manager in-process with its webhook registered
// with kube-apiserver by URL, and its audit loop off (the tests run the
// audit themselves).
func startManager() (func() error, error) {
	opts := manager.NewOptions()
	opts.PodID = podID
	opts.Audit.Interval = 0
	// The tests read the webhook's verdicts: no generated
	// ValidatingAdmissionPolicy is to answer first (package vap tests them).
	opts.VAP.CreatePolicies, opts.VAP.CreateBindings = false, false
	m, err := managertest.StartWebhook(env.Config, env.Client, opts, waitTimeout)
	if err != nil {
		return nil, err
	}
	mgr = m.Manager.Manager
	return m.Stop, nil
}
