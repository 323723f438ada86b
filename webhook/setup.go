package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/violations"
)

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Setup adds the webhook to mgr: its HTTPS server with /v1/admit,
// /v1/admitlabel and /v1/admitpolicy (when opts.Enabled) and /v1/mutate
// (when opts.Mutation, with a MutationSystem), the serving certificate,
// the Validating- and MutatingWebhookConfiguration and a "webhook"
// readiness check. eng is
// the engine the manager's controllers fill. Nothing runs until mgr starts;
// the server starts once the certificate is there and the caches are
// synced, and the configuration is applied once the server answers.
//
// The server is a controller-runtime webhook server of its own, added to
// mgr as a runnable, so that mgr needs no WebhookServer option.
func Setup(mgr ctrl.Manager, eng *engine.Engine, opts Options) error {
	if !opts.Enabled && !opts.mutating() {
		return nil
	}
	if opts.Enabled && eng == nil {
		return errors.New("webhook: no engine")
	}
	if err := opts.Complete(); err != nil {
		return fmt.Errorf("webhook options: %w", err)
	}
	log := mgr.GetLogger().WithName("webhook")

	// The Namespace informer starts with the manager's caches, so that
	// lookups hit a synced cache from the first request.
	if _, err := mgr.GetCache().GetInformer(context.Background(), &corev1.Namespace{}, cache.BlockUntilSynced(false)); err != nil {
		return fmt.Errorf("webhook: watching Namespaces: %w", err)
	}
	ho := opts.handlerOptions()
	ho.Namespaces = CachedNamespaces(mgr.GetCache(), mgr.GetAPIReader())

	certs, err := setupCerts(mgr, &opts, log)
	if err != nil {
		return err
	}
	server, err := NewServer(opts)
	if err != nil {
		return err
	}
	if opts.Enabled {
		metrics, err := NewMetrics(ctrlmetrics.Registry)
		if err != nil {
			return err
		}
		ho := ho
		ho.Metrics = metrics
		ho.Log = log.WithName("admit")
		if opts.EmitAdmissionEvents {
			rec, err := violations.NewRecorder(mgr.GetConfig(), violations.ComponentWebhook, opts.Namespace, opts.AdmissionEventsInvolvedNamespace)
			if err != nil {
				return err
			}
			if err := mgr.Add(rec); err != nil {
				return fmt.Errorf("adding the admission event recorder: %w", err)
			}
			ho.Events = rec
		}
		var rv Reviewer = eng
		if opts.Reviewer != nil {
			rv = opts.Reviewer
		}
		policy := NewPolicyHandler(eng, opts.EngineOptions, ho.Timeout, log.WithName("admitpolicy"))
		ho.Policy = policy
		if opts.ManageConfiguration {
			// The configuration it applies always has check-policy: no
			// read per request to learn it.
			ho.CheckPolicies = func(context.Context) bool { return false }
		} else {
			ho.CheckPolicies = policyWebhookMissing(mgr.GetAPIReader(), opts.ConfigurationName)
		}
		server.Register(AdmitPath, NewAdmissionHandler(rv, ho))
		server.Register(AdmitLabelPath, NewNamespaceLabelHandler(opts.exemptions(), log.WithName("admitlabel")))
		server.Register(AdmitPolicyPath, policy)
	}
	if opts.mutating() {
		metrics, err := NewMutationMetrics(ctrlmetrics.Registry)
		if err != nil {
			return err
		}
		ho := ho
		ho.Excluded = opts.MutationExcluded
		ho.Timeout = time.Duration(opts.MutationTimeoutSeconds) * time.Second
		ho.Log = log.WithName("mutate")
		server.Register(MutatePath, NewMutationHandler(opts.MutationSystem, ho, metrics))
	}
	if err := mgr.Add(&gatedServer{server: server, ready: certs.ready, log: log}); err != nil {
		return fmt.Errorf("adding the webhook server: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return fmt.Errorf("adding the webhook readiness check: %w", err)
	}
	if opts.ManageConfiguration {
		a := &configurationApplier{
			client: mgr.GetClient(), opts: opts, certs: certs, started: server.StartedChecker(),
			log: log.WithName("configuration"),
		}
		if err := mgr.Add(a); err != nil {
			return fmt.Errorf("adding the webhook configuration: %w", err)
		}
	}
	log.Info("Webhook set up", "port", opts.Port, "host", opts.Host, "certDir", opts.CertDir, "url", opts.URLHost != "",
		"validating", opts.Enabled, "mutating", opts.mutating(),
		"failurePolicy", opts.FailurePolicy, "delete", opts.EnableDeleteOperations, "connect", opts.EnableConnectOperations)
	return nil
}

// policyWebhookMissing returns a function that reports whether the
// ValidatingWebhookConfiguration name, as deployed, lacks the check-policy
// webhook (Gatekeeper's has none), so that /v1/admit checks policy objects
// itself; or that it cannot be read. It reads it live, by name (policy
// objects are written seldom), which Gatekeeper's chart's role, limited to
// that name, allows where a watch of every configuration is not.
func policyWebhookMissing(r client.Reader, name string) func(ctx context.Context) bool {
	return func(ctx context.Context) bool {
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := r.Get(ctx, client.ObjectKey{Name: name}, vwc); err != nil {
			return true
		}
		for _, w := range vwc.Webhooks {
			if w.Name == PolicyWebhookName {
				return false
			}
		}
		return true
	}
}

// NewServer builds the controller-runtime webhook server for the options:
// TLS from CertDir (reloaded by certwatcher when the files change), the
// minimum TLS version, and HTTP/1.1 only, as kubebuilder recommends since
// the HTTP/2 rapid-reset attacks.
func NewServer(o Options) (ctrlwebhook.Server, error) {
	v, err := o.tlsVersion()
	if err != nil {
		return nil, err
	}
	return ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host:    o.Host,
		Port:    o.Port,
		CertDir: o.CertDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.MinVersion = v
			c.NextProtos = []string{"http/1.1"}
		}},
	}), nil
}

// gatedServer starts the webhook server once the certificate is there.
// Added as a plain runnable, it starts after the manager's caches sync.
type gatedServer struct {
	server ctrlwebhook.Server
	ready  <-chan struct{}
	log    logr.Logger
}

func (g *gatedServer) NeedLeaderElection() bool { return false }

func (g *gatedServer) Start(ctx context.Context) error {
	select {
	case <-g.ready:
	case <-ctx.Done():
		return nil
	}
	if err := g.server.Start(ctx); err != nil {
		return fmt.Errorf("serving the webhook: %w", err)
	}
	return nil
}
