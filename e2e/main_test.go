package e2e_test

import (
	"context"
	"github.com/portcullis-dev/portcullis/internal/loopback"
	"os"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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
	opts.MetricsBindAddress = "0"
	probes, err := loopback.FreeAddr()
	if err != nil {
		return nil, err
	}
	opts.HealthProbeBindAddress = probes
	opts.Audit.Interval = 0
	port, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	opts.Webhook.URLHost = "127.0.0.1"
	opts.Webhook.Port = port
	if err := opts.Complete(); err != nil {
		return nil, err
	}
	m, err := manager.New(env.Config, opts)
	if err != nil {
		return nil, err
	}
	// The configuration's name, as the manager completes it.
	wopts := opts.Webhook
	wopts.Namespace = opts.Namespace
	if err := wopts.Complete(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	stop := func() error {
		cancel()
		// The namespace-label webhook fails closed: leave no configuration
		// behind pointing at a closed port.
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		vwc.Name = wopts.ConfigurationName
		_ = env.Client.Delete(context.Background(), vwc)
		return <-done
	}
	wctx, wcancel := context.WithTimeout(ctx, waitTimeout)
	defer wcancel()
	if err := m.WaitReady(wctx, "http://"+probes+"/readyz", done); err != nil {
		_ = stop()
		return nil, err
	}
	mgr = m
	return stop, nil
}
