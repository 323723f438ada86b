package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-dev/portcullis/internal/manager"
)

// ReadyLine starts the line printed on stdout once everything serves; the
// rest of the line says which operations the webhook judges.
const ReadyLine = "portcullis dev: ready"

// The namespaces of the "try this" block. The sample constraints of
// templates/requiredlabels require the label test (namespace-must-have-test),
// and owner matching ^[a-z][a-z0-9-]*\.team$ plus test in true|false
// (namespace-owner-and-test).
const (
	RefusedNamespace  = "demo-refused"
	AdmittedNamespace = "demo-ok"
)

// Bounds of the start-up steps; --timeout bounds them all together.
const (
	controlPlaneBound = 2 * time.Minute
	kcmBound          = time.Minute
	managerBound      = 2 * time.Minute
	samplesBound      = 2 * time.Minute
	webhookBound      = time.Minute
	// stopBound bounds each clean-up call against the API server at exit.
	stopBound = 10 * time.Second
)

// Options are the settings of one `portcullis dev`.
type Options struct {
	DataDir      string
	ReadyFile    string // written with the kubeconfig's path once ready
	AssetsDir    string // default $KUBEBUILDER_ASSETS, else bin/k8s
	TemplatesDir string
	// Samples applies the templates and sample constraints even when the
	// data dir has had them; NoSamples never applies them. By default they
	// are applied once, to a new data dir.
	Samples, NoSamples bool
	Timeout            time.Duration // of the whole start-up
	// StopOnly stops what a killed run of the data dir left running, then
	// returns without starting anything.
	StopOnly bool
	// Manager is the manager's options, from ManagerOptions.
	Manager        manager.Options
	Stdout, Stderr io.Writer
	// HoldAt, for tests only, holds start-up at the end of the step it
	// names (one of the Hold* steps) until a signal or --timeout, so that
	// a signal always lands mid-step. The CLI takes it from HoldEnv.
	HoldAt string
}

// HoldEnv is the environment variable the CLI reads Options.HoldAt from.
const HoldEnv = "PORTCULLIS_DEV_HOLD_AT"

// The start-up steps Options.HoldAt may name.
const (
	HoldControlPlane      = "control-plane"
	HoldControllerManager = "controller-manager"
	HoldManager           = "manager"
	HoldSamples           = "samples"
)

// run is one `portcullis dev`.
type run struct {
	o               Options
	stdout, stderr  io.Writer
	dataDir, assets string
	records         *records
	recordErrSaid   bool
}

// Run runs `portcullis dev` until SIGINT, SIGTERM or SIGHUP: take the data
// dir's lock, stop what a previous run left, start etcd and
// kube-apiserver, remove stale webhook configurations, start
// kube-controller-manager and the manager, apply the samples to a new data
// dir, check that the API server reaches the webhook, and say it is ready.
// Every start-up wait is bounded and says what it waits for; a signal at
// any moment stops what was started, in reverse order, and a second one
// kills it. The error says what failed; after ready, a signal is a clean
// stop (nil).
func Run(parent context.Context, o Options) (retErr error) {
	begin := time.Now()
	r := &run{o: o, stdout: o.Stdout, stderr: o.Stderr}
	var err error
	if r.dataDir, err = filepath.Abs(o.DataDir); err != nil {
		return fmt.Errorf("data dir %s: %w", o.DataDir, err)
	}
	// Before the signal handler, which reads them.
	r.records = newRecords(r.dataDir)
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	defer r.handleSignals(cancel)()

	if err := os.MkdirAll(r.dataDir, 0o755); err != nil {
		return fmt.Errorf("creating the data dir: %w", err)
	}
	lock, err := lockDataDir(r.dataDir)
	if err != nil {
		return err
	}
	defer lock.release()
	if o.ReadyFile != "" {
		_ = os.Remove(o.ReadyFile)
	}
	st, note, err := loadState(r.dataDir)
	if err != nil {
		return err
	}
	stopped, err := r.stopLeftovers(lock.previous)
	if err != nil {
		return err
	}
	if o.StopOnly {
		if stopped == 0 {
			fmt.Fprintf(r.stderr, "portcullis dev: nothing left running with data dir %s\n", r.dataDir)
		}
		return nil
	}
	if note != "" {
		fmt.Fprintln(r.stderr, "portcullis dev: "+note)
	}
	opts := o.Manager
	wopts := opts.Webhook
	wopts.Namespace = opts.Namespace
	if err := wopts.Complete(); err != nil {
		return fmt.Errorf("manager flags after --: %w", err)
	}
	if err := checkPorts(opts, wopts); err != nil {
		return err
	}
	logger, logFile, err := devLogger(r.dataDir)
	if err != nil {
		return err
	}
	defer logFile.Close()
	if r.assets, err = findAssets(ctx, o.AssetsDir, r.stderr); err != nil {
		return err
	}
	etcdVersion := assetVersion(r.assets, "etcd")
	if err := checkEtcd(r.dataDir, st.Etcd, etcdVersion); err != nil {
		return err
	}
	if etcdVersion != "" {
		st.Etcd = etcdVersion
	}
	if err := st.save(r.dataDir); err != nil {
		return err
	}

	startCtx, cancelStart := context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("start-up took longer than --timeout %s", o.Timeout))
	defer cancelStart()
	// What started is stopped in reverse order, whatever happens next.
	var stops []func() error
	defer func() {
		if err := r.stopAll(stops); err != nil && retErr == nil {
			retErr = err
		}
	}()

	fmt.Fprintf(r.stderr, "portcullis dev: starting etcd and kube-apiserver (data in %s, logs in %s)\n", r.dataDir, filepath.Join(r.dataDir, "*.log"))
	cp, err := r.startControlPlane(startCtx, controlPlaneBound)
	if err != nil {
		return startErr(startCtx, "starting etcd and kube-apiserver", err)
	}
	stops = append(stops, cp.stop)
	if err := r.hold(startCtx, HoldControlPlane); err != nil {
		return startErr(startCtx, "starting etcd and kube-apiserver", err)
	}
	cs, err := kubernetes.NewForConfig(cp.cfg)
	if err != nil {
		return fmt.Errorf("creating a client of the API server: %w", err)
	}
	removed, err := removeWebhookConfigurations(startCtx, cs, wopts.ConfigurationName)
	if err != nil {
		return startErr(startCtx, "removing stale webhook configurations", err)
	}
	if len(removed) > 0 {
		fmt.Fprintf(r.stderr, "portcullis dev: removed %s, left by a run that did not stop cleanly (it pointed at a closed port)\n", joinAnd(removed))
	}

	fmt.Fprintf(r.stderr, "portcullis dev: starting kube-controller-manager (%d controllers that need no node; no kubelet: Pods stay Pending)\n", len(Controllers))
	kcm, err := r.startControllerManager(startCtx, cp, kcmBound)
	if err != nil {
		return startErr(startCtx, "starting kube-controller-manager", err)
	}
	stops = append(stops, kcm.stop)
	if err := r.hold(startCtx, HoldControllerManager); err != nil {
		return startErr(startCtx, "starting kube-controller-manager", err)
	}

	fmt.Fprintf(r.stderr, "portcullis dev: starting the manager (CRDs, controllers, webhook on 127.0.0.1:%d, audit every %s; log in %s)\n",
		wopts.Port, opts.Audit.Interval, logFile.Name())
	m, err := r.startManager(startCtx, cp.cfg, opts, logger, managerBound)
	if err != nil {
		return startErr(startCtx, "starting the manager", err)
	}
	stops = append(stops, func() error {
		err := m.stop()
		// Only once the manager is gone: it would apply its configuration
		// again. Left behind, it would point at a closed port.
		delCtx, cancel := context.WithTimeout(context.Background(), stopBound)
		defer cancel()
		if _, derr := removeWebhookConfigurations(delCtx, cs, wopts.ConfigurationName); derr != nil && err == nil {
			err = derr
		}
		return err
	})
	if err := r.hold(startCtx, HoldManager); err != nil {
		return startErr(startCtx, "starting the manager", err)
	}

	if wopts.Enabled && wopts.ManageConfiguration {
		probe := webhookProbe(cs, probeNamespace(wopts, opts.Namespace))
		if err := waitFor(startCtx, r.stderr, "the API server to reach the webhook", webhookBound, 200*time.Millisecond, probe); err != nil {
			return startErr(startCtx, "checking the webhook", err)
		}
	}

	switch {
	case o.Samples || (!o.NoSamples && st.Samples == ""):
		if err := r.applySamples(startCtx, cp.cfg, o.TemplatesDir, samplesBound); err != nil {
			return startErr(startCtx, "applying the samples", err)
		}
		if err := r.hold(startCtx, HoldSamples); err != nil {
			return startErr(startCtx, "applying the samples", err)
		}
		st.Samples = samplesApplied
	case o.NoSamples && st.Samples == "":
		st.Samples = samplesSkipped
	}
	if err := st.save(r.dataDir); err != nil {
		return err
	}

	kubeconfig, err := cp.kubeconfig(r.dataDir, "kubeconfig", "admin")
	if err != nil {
		return err
	}
	if err := r.ready(kubeconfig, st, judged(opts), time.Since(begin)); err != nil {
		return err
	}
	return r.serve(ctx, m)
}

// hold holds start-up at the end of step until ctx ends, when
// Options.HoldAt names it, and returns why it ended.
func (r *run) hold(ctx context.Context, step string) error {
	if r.o.HoldAt != step {
		return nil
	}
	fmt.Fprintf(r.stderr, "portcullis dev: holding at %s (%s)\n", step, HoldEnv)
	<-ctx.Done()
	return context.Cause(ctx)
}

// startErr is the error of the start-up step doing what; interrupted by
// a signal, it says so and no more.
func startErr(ctx context.Context, doing string, err error) error {
	if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrInterrupted) {
		return fmt.Errorf("%w while %s; everything it started is stopped", cause, doing)
	}
	return fmt.Errorf("start-up failed while %s, everything it started is stopped: %w", doing, err)
}

// serve waits for a signal, the manager to stop, or a child to exit.
func (r *run) serve(ctx context.Context, m *devManager) error {
	children := r.records.live()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-m.done:
			m.done <- err
			return fmt.Errorf("%w (see %s)", manager.Stopped(err), r.logPath("portcullis"))
		case <-tick.C:
			for _, p := range children {
				if !p.alive() {
					return fmt.Errorf("%s %w unexpectedly; stopping the rest\n%s", p, errExited, r.logTails(p.Name))
				}
			}
		}
	}
}

// stopAll runs stops in reverse order, then forgets the processes if none
// is left.
func (r *run) stopAll(stops []func() error) error {
	if len(stops) > 0 {
		fmt.Fprintln(r.stderr, "portcullis dev: stopping the manager, kube-controller-manager, kube-apiserver and etcd")
	}
	var errs []error
	for _, stop := range slices.Backward(stops) {
		if err := stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if left := r.records.live(); len(left) > 0 {
		res, err := stopInOrder(r.stderr, left, 5*time.Second)
		if err != nil {
			errs = append(errs, err)
		}
		if len(res.left) > 0 {
			errs = append(errs, fmt.Errorf("%s still running; the next portcullis dev stops them", listProcs(res.left)))
		}
	}
	if len(r.records.live()) == 0 {
		if err := r.records.clear(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.o.ReadyFile != "" {
		_ = os.Remove(r.o.ReadyFile)
	}
	if len(errs) > 0 {
		return fmt.Errorf("stopping: %w", errors.Join(errs...))
	}
	if len(stops) > 0 {
		fmt.Fprintln(r.stderr, "portcullis dev: stopped")
	}
	return nil
}

// stopLeftovers stops the processes a previous run of this data dir left
// running (recorded, or running with the data dir on their command line),
// SIGTERM then SIGKILL, and says so in one line. It returns how many it
// stopped.
func (r *run) stopLeftovers(prev *owner) (int, error) {
	recorded, err := r.records.load()
	if err != nil {
		return 0, err
	}
	var left []proc
	for _, p := range recorded {
		if p.alive() {
			left = append(left, p)
		}
	}
	for _, p := range usingDir(r.dataDir) {
		if !slices.ContainsFunc(left, func(q proc) bool { return q.PID == p.PID }) {
			left = append(left, p)
		}
	}
	if len(left) == 0 {
		return 0, r.records.clear()
	}
	res, err := stopInOrder(r.stderr, left, 10*time.Second)
	if err != nil {
		return 0, fmt.Errorf("stopping what a previous portcullis dev left running: %w", err)
	}
	by := "a previous portcullis dev"
	if prev != nil && prev.PID != os.Getpid() {
		by = fmt.Sprintf("a previous portcullis dev (%s)", prev)
	}
	line := fmt.Sprintf("portcullis dev: stopped %s, left running by %s that did not stop cleanly", listProcs(left), by)
	if len(res.killed) > 0 {
		line += fmt.Sprintf(" (%s needed SIGKILL)", listProcs(res.killed))
	}
	fmt.Fprintln(r.stderr, line)
	if len(res.left) > 0 {
		return 0, fmt.Errorf("%s still running after SIGKILL: stop them by hand, then start again", listProcs(res.left))
	}
	return len(left), r.records.clear()
}

// handleSignals makes the first SIGINT, SIGTERM or SIGHUP cancel ctx with
// ErrInterrupted, and a second one kill every child at once. The returned
// function stops listening.
func (r *run) handleSignals(cancel context.CancelCauseFunc) func() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(r.stderr, "portcullis dev: %s: stopping everything it started (again to kill it all at once)\n", sigName(s))
			cancel(fmt.Errorf("%w by %s", ErrInterrupted, sigName(s)))
		case <-done:
			return
		}
		select {
		case s := <-sigs:
			left := r.records.live()
			fmt.Fprintf(r.stderr, "portcullis dev: %s again: killing %s\n", sigName(s), listProcs(left))
			for _, p := range left {
				_ = syscall.Kill(p.PID, syscall.SIGKILL)
			}
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// sigName is SIGINT, SIGTERM or SIGHUP.
func sigName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}

// devLogger sends the logs of the manager, controller-runtime and klog to
// <dataDir>/portcullis.log; the caller closes the file.
func devLogger(dataDir string) (logr.Logger, *os.File, error) {
	logFile, err := os.OpenFile(filepath.Join(dataDir, "portcullis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return logr.Logger{}, nil, fmt.Errorf("opening the manager's log: %w", err)
	}
	logger := zap.New(zap.WriteTo(logFile), zap.UseDevMode(true))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	return logger, logFile, nil
}
