package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/portcullis-dev/portcullis/internal/loopback"
	"os"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// waitTimeout bounds every poll; polls end as soon as their condition holds.
const waitTimeout = 2 * time.Minute

var (
	env *testenv.Env
	mgr *manager.Manager
)

func TestMain(m *testing.M) {
	logger := zap.New(zap.UseDevMode(true), zap.WriteTo(logSink()))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	os.Exit(run(m))
}

func logSink() *os.File {
	if os.Getenv("PORTCULLIS_TEST_LOG") != "" {
		return os.Stderr
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		return os.Stderr
	}
	return f
}

func run(m *testing.M) int {
	var err error
	env, err = testenv.Run()
	if errors.Is(err, testenv.ErrNoAssets) && !testenv.InCI() {
		fmt.Printf("Skipping the end-to-end tests: %v; run `make envtest-assets`\n", err)
		env = nil
		return m.Run()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Starting envtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "Stopping envtest: %v\n", err)
		}
	}()
	stop, err := startManager()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Starting the manager: %v\n", err)
		return 1
	}
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "Stopping the manager: %v\n", err)
		code = 1
	}
	return code
}

// startManager runs the manager in-process with its webhook registered
// with kube-apiserver by URL, and its audit loop off (the tests run the
// audit themselves).
func startManager() (func() error, error) {
	opts := manager.NewOptions()
	opts.PodID = "e2e"
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
