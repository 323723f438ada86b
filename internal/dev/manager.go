package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/internal/loopback"
	"github.com/portcullis-dev/portcullis/internal/manager"
)

// PodID is the manager's --pod-id under dev, in status.byPod.
const PodID = "dev"

// ownedFlags are the manager flags dev sets itself.
var ownedFlags = map[string]string{
	"kubeconfig":       "dev runs its own API server and gives the manager its address",
	"webhook-url-host": "dev registers the webhook by URL on 127.0.0.1, where its API server reaches it",
}

// ManagerOptions parses the manager flags given after `--`, over dev's
// defaults: --pod-id dev, audit every 30s writing PolicyReports
// (--audit-reports=policyreport), the webhook by URL on 127.0.0.1,
// DELETE and CONNECT judged, no ValidatingAdmissionPolicy generated (the
// docs show the webhook's verdicts; a generated policy would answer
// first), and free loopback ports for the webhook, metrics and probes
// unless given.
func ManagerOptions(args []string) (manager.Options, error) {
	opts := manager.NewOptions()
	opts.PodID = PodID
	opts.Audit.Interval = 30 * time.Second
	opts.Audit.Reports = audit.ReportsPolicyReport
	opts.Webhook.URLHost = "127.0.0.1"
	opts.Webhook.EnableDeleteOperations = true
	opts.Webhook.EnableConnectOperations = true
	opts.VAP.CreatePolicies, opts.VAP.CreateBindings = false, false
	fs := pflag.NewFlagSet("manager flags", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return opts, fmt.Errorf("manager flags after --: %w (see portcullis manager --help)", err)
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("manager flags after --: unexpected argument %q: only flags go there", fs.Arg(0))
	}
	for name, why := range ownedFlags {
		if fs.Changed(name) {
			return opts, fmt.Errorf("manager flags after --: --%s cannot be given to portcullis dev: %s", name, why)
		}
	}
	var err error
	if !fs.Changed("port") {
		if opts.Webhook.Port, err = loopback.FreePort(); err != nil {
			return opts, fmt.Errorf("choosing the webhook's port: %w", err)
		}
	}
	if !fs.Changed("metrics-bind-address") && !fs.Changed("prometheus-port") {
		if opts.MetricsBindAddress, err = loopback.FreeAddr(); err != nil {
			return opts, fmt.Errorf("choosing the metrics address: %w", err)
		}
	}
	if !fs.Changed("health-probe-bind-address") && !fs.Changed("health-addr") {
		if opts.HealthProbeBindAddress, err = loopback.FreeAddr(); err != nil {
			return opts, fmt.Errorf("choosing the health probe address: %w", err)
		}
	}
	if err := opts.Complete(); err != nil {
		return opts, fmt.Errorf("manager flags after --: %w", err)
	}
	if opts.HealthProbeBindAddress == "0" {
		return opts, errors.New("manager flags after --: --health-probe-bind-address=0: portcullis dev waits for the manager's /readyz")
	}
	return opts, nil
}

// judged says which operations the webhook judges, for the ready line.
func judged(opts manager.Options) string {
	if !opts.Webhook.Enabled {
		return "no webhook (audit only)"
	}
	ops := []string{"CREATE", "UPDATE"}
	if opts.Webhook.EnableDeleteOperations {
		ops = append(ops, "DELETE")
	}
	if opts.Webhook.EnableConnectOperations {
		ops = append(ops, "CONNECT")
	}
	return "the webhook judges " + strings.Join(ops[:len(ops)-1], ", ") + " and " + ops[len(ops)-1]
}

// devManager is the manager running in this process.
type devManager struct {
	cancel context.CancelFunc
	// done receives the manager's Start result; whoever reads it puts it
	// back.
	done  chan error
	delay time.Duration // --shutdown-delay
}

// startManager creates the manager's namespace, starts the manager and
// waits at most bound until it is ready: every policy loaded, and /readyz
// answering 200 (webhook serving, data synced).
func (r *run) startManager(ctx context.Context, cfg *rest.Config, opts manager.Options, logger logr.Logger, bound time.Duration) (*devManager, error) {
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building the client's scheme: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating a client of the API server: %w", err)
	}
	ns := &corev1.Namespace{}
	ns.Name = opts.Namespace
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}
	m, err := manager.New(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("building the manager: %w", err)
	}
	mgrCtx, cancel := context.WithCancel(ctrl.LoggerInto(context.Background(), logger))
	d := &devManager{cancel: cancel, done: make(chan error, 1), delay: opts.ShutdownDelay}
	go func() { d.done <- m.Start(mgrCtx) }()

	readyz := "http://" + opts.HealthProbeBindAddress + "/readyz?verbose"
	hc := &http.Client{Timeout: 2 * time.Second}
	err = waitFor(ctx, r.stderr, "the manager to be ready", bound, 100*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		select {
		case err := <-d.done:
			d.done <- err
			return false, "", fmt.Errorf("%w (see %s)", manager.Stopped(err), r.logPath("portcullis"))
		default:
		}
		if err := m.Ready(); err != nil {
			return false, "policies not loaded yet: " + err.Error(), nil
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, readyz, http.NoBody)
		if err != nil {
			return false, "", err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false, "/readyz: " + err.Error(), nil
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return true, "", nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return false, "/readyz answers " + resp.Status + ": " + failedChecks(string(b)), nil
	})
	if err != nil {
		_ = d.stop()
		return nil, err
	}
	return d, nil
}

// failedChecks picks the failing checks out of a verbose /readyz body.
func failedChecks(body string) string {
	var failed []string
	for l := range strings.SplitSeq(body, "\n") {
		if rest, ok := strings.CutPrefix(l, "[-]"); ok {
			failed = append(failed, strings.TrimSpace(rest))
		}
	}
	if len(failed) == 0 {
		return strings.TrimSpace(body)
	}
	return strings.Join(failed, "; ")
}

// stop stops the manager, waiting at most 20s past its --shutdown-delay.
func (d *devManager) stop() error {
	d.cancel()
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			return fmt.Errorf("manager: %w", err)
		}
		return nil
	case <-time.After(d.delay + 20*time.Second):
		if d.delay > 0 {
			return fmt.Errorf("the manager did not stop within 20s of its --shutdown-delay (%s)", d.delay)
		}
		return errors.New("the manager did not stop within 20s")
	}
}
