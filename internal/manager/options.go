package manager

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/controllers"
	"github.com/portcullis-dev/portcullis/controllers/datasync"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/vap"
	"github.com/portcullis-dev/portcullis/webhook"
)

// DefaultNamespace is where Portcullis runs unless told otherwise.
const DefaultNamespace = "portcullis-system"

// Options are the settings of `portcullis manager`, one flag each. Build them
// with NewOptions, bind them with AddFlags, and call Complete before New.
type Options struct {
	// Kubeconfig is the kubeconfig file to use (--kubeconfig). Empty means
	// $KUBECONFIG, then the in-cluster config, then ~/.kube/config.
	Kubeconfig string

	// Namespace is the namespace Portcullis runs in (--namespace); leader
	// election uses it unless LeaderElectionNamespace is set.
	Namespace string

	// PodID identifies this replica in the status.byPod lists of templates
	// and constraints (--pod-id). Default: $POD_NAME, else the hostname.
	PodID string

	// MetricsBindAddress serves Prometheus metrics on /metrics
	// (--metrics-bind-address); "0" turns them off.
	MetricsBindAddress string

	// HealthProbeBindAddress serves /healthz and /readyz
	// (--health-probe-bind-address); "0" turns them off. /readyz fails until
	// every ConstraintTemplate and constraint that existed at startup is
	// loaded into the engine or shows an error in its status.
	HealthProbeBindAddress string

	// LeaderElect turns on leader election (--leader-elect). Every replica
	// loads its own engine and reports its own status whether it leads or
	// not; only runnables that need a single writer wait for leadership.
	LeaderElect bool

	// LeaderElectionNamespace holds the leader election Lease
	// (--leader-election-namespace). Default: Namespace.
	LeaderElectionNamespace string

	// ResultCacheSize is how many constraint results the engine remembers
	// (--result-cache-size), keyed by the parts of the object each
	// template reads, so that a Deployment's pods are judged once per
	// template; 0 turns the cache off.
	ResultCacheSize int

	// EnableK8sNativeValidation runs the CEL of templates that have both
	// CEL and Rego (--enable-k8s-native-validation, default true, as in
	// Gatekeeper); false runs their Rego. Templates with only CEL run it
	// either way.
	EnableK8sNativeValidation bool

	// InstallCRDs installs or updates the CRDs (ConstraintTemplate, Config,
	// SyncSet, ExpansionTemplate) at startup (--install-crds), from config/crd/crds.yaml
	// embedded in the binary.
	InstallCRDs bool

	// Engine configures the policy engine (--enable-http-send,
	// --disable-builtin).
	Engine engine.Options

	// Sync configures the sync of the kinds listed by the Config and the
	// SyncSets into data.inventory (--sync-keep-managed-fields).
	Sync datasync.Options

	// Webhook configures the validating admission webhook (--enable-webhook,
	// --port, --cert-dir, --webhook-url-host, --failure-policy,
	// --exempt-namespace* and more; see webhook.Options).
	Webhook webhook.Options

	// VAP configures the generation of ValidatingAdmissionPolicies and
	// their bindings from CEL templates and their constraints, by the
	// replicas with --operation=generate (--default-create-vap-for-templates,
	// --default-create-vap-binding-for-constraints,
	// --default-wait-for-vapb-generation, --sync-vap-enforcement-scope).
	VAP vap.Options

	// Audit configures the periodic audit (--audit-*,
	// --constraint-violations-limit, --log-audit-violations). It shares the
	// webhook's --exempt-namespace* flags.
	Audit audit.Options

	// Mutation configures the mutation system (--mutation-annotations,
	// --log-mutations).
	Mutation MutationOptions

	// Log configures logging (the --zap-* flags, and Gatekeeper's
	// --log-level).
	Log zap.Options

	// Operations are what this replica does, from Gatekeeper's --operation
	// (all of AllOperations when none is given), sorted. Complete turns
	// them into Webhook.Enabled and Audit.Interval.
	Operations []Operation

	// ShutdownDelay keeps the manager running this long after its context
	// ends (--shutdown-delay), so that the webhook serves while the API
	// server stops sending it requests.
	ShutdownDelay time.Duration

	// HeartbeatDuration is how long this replica's heartbeat Lease lasts
	// unrenewed (--replica-heartbeat-duration); it renews it, and with
	// --operation=status prunes the status.byPod entries of replicas that
	// are gone, four times as often. 0 turns both off.
	HeartbeatDuration time.Duration

	// EnableGeneratorResourceExpansion expands workloads with the
	// ExpansionTemplates (--enable-generator-resource-expansion, default
	// true, as in Gatekeeper): the webhook and the audit then judge a
	// Deployment, a Job or a CronJob by the Pods it would create too.
	EnableGeneratorResourceExpansion bool

	// ReadinessRetries is how many times a template or constraint that
	// fails to load is retried before /readyz stops waiting for it
	// (--readiness-retries, Gatekeeper's); -1 waits until it loads.
	ReadinessRetries int

	// EnablePprof serves net/http/pprof on localhost:PprofPort
	// (--enable-pprof, --pprof-port).
	EnablePprof bool
	PprofPort   int

	// gatekeeper holds Gatekeeper's flags that Complete maps onto the
	// fields above; flags is the set AddFlags bound them to.
	gatekeeper gatekeeperOptions
	flags      *pflag.FlagSet
	// unsupported are the given flags naming features Portcullis lacks.
	unsupported []UnsupportedFlag
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		Namespace:                 DefaultNamespace,
		MetricsBindAddress:        ":8080",
		HealthProbeBindAddress:    ":8081",
		InstallCRDs:               true,
		EnableK8sNativeValidation: true,
		ResultCacheSize:           engine.DefaultResultCacheSize,
		Webhook:                   webhook.NewOptions(),
		Audit:                     audit.NewOptions(),
		VAP:                       vap.NewOptions(),
		PprofPort:                 defaultPprofPort,
		HeartbeatDuration:         controllers.DefaultHeartbeatDuration,

		EnableGeneratorResourceExpansion: true,
	}
}

// defaultPprofPort is Gatekeeper's --pprof-port default.
const defaultPprofPort = 6060

// AddFlags binds every option to a flag in fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig file; default $KUBECONFIG, the in-cluster config, then ~/.kube/config")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "namespace Portcullis runs in; when not given, $POD_NAMESPACE if set (as Gatekeeper's chart sets it)")
	fs.StringVar(&o.PodID, "pod-id", o.PodID, "ID of this replica in status.byPod (default $POD_NAME, else the hostname)")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "address of the Prometheus /metrics endpoint; 0 turns it off")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "address of /healthz and /readyz; 0 turns them off")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "use leader election for runnables that need a single writer")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace, "namespace of the leader election Lease (default --namespace)")
	fs.BoolVar(&o.InstallCRDs, "install-crds", o.InstallCRDs, "install or update the CRDs (ConstraintTemplate, Config, SyncSet, ExpansionTemplate, the mutators) at startup")
	fs.BoolVar(&o.Engine.EnableHTTPSend, "enable-http-send", o.Engine.EnableHTTPSend, "allow the http.send Rego builtin")
	fs.StringSliceVar(&o.Engine.DisabledBuiltins, "disable-builtin", o.Engine.DisabledBuiltins, "Rego builtin to refuse in templates (repeatable)")
	fs.BoolVar(&o.EnableK8sNativeValidation, "enable-k8s-native-validation", o.EnableK8sNativeValidation, "run the K8sNativeValidation (CEL) code of templates that have both CEL and Rego, as Gatekeeper does; false runs their Rego (templates with only CEL run it either way)")
	fs.StringVar(&o.Engine.DefaultK8sNativeValidationFailurePolicy, "default-k8s-native-validation-failure-policy", "Fail", "failurePolicy of the K8sNativeValidation (CEL) sources that set none: Fail (an evaluation error is a violation) or Ignore")
	fs.DurationVar(&o.HeartbeatDuration, "replica-heartbeat-duration", o.HeartbeatDuration, "how long this replica's heartbeat Lease lasts unrenewed; a replica whose Pod is gone, or outside a cluster whose Lease is this stale, is gone, and the replicas with --operation=status remove its status.byPod entries; 0 turns heartbeats and pruning off")
	fs.IntVar(&o.ResultCacheSize, "result-cache-size", o.ResultCacheSize, "constraint results each engine (Rego, CEL) remembers, keyed by the parts of the object each template reads, so that equal pods are judged once per template; 0 turns the cache off")
	fs.BoolVar(&o.EnableGeneratorResourceExpansion, "enable-generator-resource-expansion", o.EnableGeneratorResourceExpansion,
		"(beta) expand workloads with the ExpansionTemplates, so that the webhook and the audit also judge the resources they would create (a Deployment by its Pod)")
	o.Sync.AddFlags(fs)
	o.Webhook.AddFlags(fs)
	o.Audit.AddFlags(fs)
	o.Mutation.AddFlags(fs)
	o.VAP.AddFlags(fs)
	gofs := flag.NewFlagSet("zap", flag.ContinueOnError)
	o.Log.BindFlags(gofs)
	fs.AddGoFlagSet(gofs)
	o.addGatekeeperFlags(fs)
	markGatekeeperFlags(fs)
	o.flags = fs
}

// Complete fills in defaults that depend on the environment and checks the
// options.
func (o *Options) Complete() error {
	if o.PodID == "" {
		o.PodID = os.Getenv("POD_NAME")
	}
	if o.PodID == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--pod-id not set and no hostname: %w", err)
		}
		o.PodID = host
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" && o.flags != nil && !o.flags.Changed("namespace") {
		// Gatekeeper's chart sets POD_NAMESPACE and no flag.
		o.Namespace = ns
	}
	if o.LeaderElectionNamespace == "" {
		o.LeaderElectionNamespace = o.Namespace
	}
	o.Engine.DisableK8sNativeValidation = !o.EnableK8sNativeValidation
	var errs []error
	if err := o.completeGatekeeper(); err != nil {
		errs = append(errs, err)
	}
	if len(o.Operations) == 0 {
		o.Operations = slices.Clone(AllOperations)
	}
	if err := o.Audit.Validate(); err != nil {
		errs = append(errs, err)
	}
	o.VAP.DefaultFailurePolicy = o.Engine.DefaultK8sNativeValidationFailurePolicy
	if err := o.VAP.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.HeartbeatDuration < 0 {
		errs = append(errs, fmt.Errorf("--replica-heartbeat-duration must not be negative, got %s", o.HeartbeatDuration))
	}
	if o.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-delay must not be negative, got %s", o.ShutdownDelay))
	}
	if strings.TrimSpace(o.Namespace) == "" {
		errs = append(errs, errors.New("--namespace must not be empty"))
	}
	if o.LeaderElect && o.LeaderElectionNamespace == "" {
		errs = append(errs, errors.New("--leader-elect needs --leader-election-namespace or --namespace"))
	}
	if p := o.Engine.DefaultK8sNativeValidationFailurePolicy; p != "" && p != "Fail" && p != "Ignore" {
		errs = append(errs, fmt.Errorf("--default-k8s-native-validation-failure-policy must be Fail or Ignore, got %q", p))
	}
	switch {
	case o.ResultCacheSize < 0:
		errs = append(errs, fmt.Errorf("--result-cache-size must not be negative, got %d", o.ResultCacheSize))
	case o.ResultCacheSize == 0:
		o.Engine.ResultCacheSize = -1
	default:
		o.Engine.ResultCacheSize = o.ResultCacheSize
	}
	return errors.Join(errs...)
}

// RESTConfig loads the configuration to reach the API server.
func (o *Options) RESTConfig() (*rest.Config, error) {
	if o.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("loading --kubeconfig %s: %w", o.Kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	return cfg, nil
}

// Unsupported lists the Gatekeeper flags Complete found set to values that
// ask for a feature Portcullis does not have: the manager logs each once
// at start.
func (o *Options) Unsupported() []UnsupportedFlag { return slices.Clone(o.unsupported) }
