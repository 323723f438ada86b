package webhook

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/engine"
)

// Defaults, as in Gatekeeper where it has one.
const (
	DefaultPort                  = 8443
	DefaultConfigurationName     = "portcullis-validating-webhook-configuration"
	DefaultServiceName           = "portcullis-webhook-service"
	DefaultCertSecretName        = "portcullis-webhook-server-cert"
	DefaultServiceAccount        = "portcullis-controller-manager"
	DefaultTimeoutSeconds        = 3
	DefaultCertDir               = "/certs"
	FailurePolicyIgnore          = "Ignore"
	FailurePolicyFail            = "Fail"
	defaultMaxServingThreads     = -1
	maxTimeoutSeconds            = 30 // the API server's own limit
	defaultTLSMinVersion         = "1.3"
	serviceAccountUsernamePrefix = "system:serviceaccount:"
)

// Options are the webhook's settings, one flag each. Build them with
// NewOptions, bind them with AddFlags, and Complete them before Setup.
type Options struct {
	// Enabled serves the webhook at all (--enable-webhook).
	Enabled bool

	// Host is the address the server listens on (--host). Default: all
	// addresses, or the --webhook-url-host when that is an IP address or
	// localhost.
	Host string
	// Port is the HTTPS port (--port).
	Port int
	// TLSMinVersion is the lowest TLS version served: 1.2 or 1.3
	// (--tls-min-version).
	TLSMinVersion string

	// CertDir holds tls.crt and tls.key (--cert-dir). With rotation on,
	// in-cluster it is where the Secret is mounted; with a URL it is where
	// the self-managed CA writes them (a temporary directory when empty).
	CertDir string
	// DisableCertRotation serves the certificates found in CertDir as they
	// are (--disable-cert-rotation), e.g. from cert-manager; they are
	// reloaded when they change, and CertDir/ca.crt, when present, becomes
	// the CA bundle.
	DisableCertRotation bool
	// CertSecretName is the Secret holding the CA and serving certificate
	// in Namespace (--cert-secret-name), rotated by cert-controller.
	CertSecretName string
	// ServiceName is the Service in front of the webhook
	// (--webhook-service-name), used in-cluster.
	ServiceName string
	// URLHost registers the webhook by URL, https://<URLHost>:<Port>/v1/...,
	// instead of by Service (--webhook-url-host): for local control planes
	// such as envtest, e.g. 127.0.0.1. The self-managed CA then issues the
	// serving certificate for that host.
	URLHost string

	// ConfigurationName names the ValidatingWebhookConfiguration
	// (--validating-webhook-configuration-name).
	ConfigurationName string
	// ManageConfiguration creates and updates that configuration at startup
	// (--manage-webhook-configuration); turn it off when it is deployed
	// from config/webhook by other means.
	ManageConfiguration bool
	// FailurePolicy is Ignore or Fail (--failure-policy), for /v1/admit and
	// /v1/admitpolicy. /v1/admitlabel always fails closed, as in Gatekeeper.
	FailurePolicy string
	// TimeoutSeconds is the API server's timeout for each call
	// (--timeout-seconds); reviews stop at that deadline.
	TimeoutSeconds int32
	// EnableDeleteOperations judges DELETE, on the deleted object
	// (--enable-delete-operations).
	EnableDeleteOperations bool
	// EnableConnectOperations judges CONNECT, such as pods/exec and
	// pods/attach (--enable-connect-operations).
	EnableConnectOperations bool

	// ExemptNamespaces, ExemptNamespacePrefixes and ExemptNamespaceSuffixes
	// are never judged and are the only namespaces that may carry the
	// admission.gatekeeper.sh/ignore label (--exempt-namespace,
	// --exempt-namespace-prefix, --exempt-namespace-suffix). Namespace, the
	// manager's own, is always exempt.
	ExemptNamespaces        []string
	ExemptNamespacePrefixes []string
	ExemptNamespaceSuffixes []string

	// MaxServingThreads bounds the reviews running at once
	// (--max-serving-threads): -1 means GOMAXPROCS, 0 no bound.
	MaxServingThreads int
	// LogDenies logs every violation with Gatekeeper's keys (--log-denies);
	// dryrun ones are logged without it too.
	LogDenies bool
	// EmitAdmissionEvents emits every violation as a Warning Event, with
	// Gatekeeper's reasons and annotations (--emit-admission-events), in
	// Namespace, or with AdmissionEventsInvolvedNamespace in the
	// namespace of the object (--admission-events-involved-namespace).
	EmitAdmissionEvents              bool
	AdmissionEventsInvolvedNamespace bool
	// ServiceAccount is the manager's own identity, whose requests are
	// always allowed (--manager-service-account): a ServiceAccount name in
	// Namespace, or a full user name containing ':'.
	ServiceAccount string

	// Namespace is the namespace the manager runs in: the Service's, the
	// Secret's and always exempt. Set it from the manager's --namespace.
	Namespace string
	// Trace reports whether a request by user on kind gvk is to be traced,
	// and its object dumped (Config spec.validation.traces). Set it from
	// the manager's sync; nil: never.
	Trace func(user string, gvk schema.GroupVersionKind) (trace, dump bool)
	// Excluded reports namespaces the Config excludes from the webhook
	// (spec.match[].processes: [webhook]), which are allowed unjudged. Nil:
	// none.
	Excluded func(namespace string) bool
	// Ready reports whether the engine holds every template and constraint
	// (the manager's Ready). /v1/admit answers 503 until it does. Nil:
	// always ready.
	Ready func() error
	// EngineOptions are the running engine's options. ConstraintTemplates
	// are compiled with them at apply time, so that a template using a
	// disabled builtin is refused. Set them from the manager's.
	EngineOptions engine.Options
	// Reviewer judges /v1/admit requests in place of the engine: the
	// manager's expansion.Reviewer, so that a Deployment is also judged
	// by the Pods it would create. Nil: the engine.
	Reviewer Reviewer

	// Mutation serves /v1/mutate and applies the
	// MutatingWebhookConfiguration (--enable-mutation-webhook), once
	// MutationSystem is set.
	Mutation bool
	// MutatingConfigurationName names the MutatingWebhookConfiguration
	// (--mutating-webhook-configuration-name).
	MutatingConfigurationName string
	// MutationFailurePolicy is the mutating webhook's failurePolicy,
	// Ignore or Fail (--mutation-failure-policy).
	MutationFailurePolicy string
	// MutationTimeoutSeconds is the API server's timeout for each call to
	// /v1/mutate (--mutation-timeout-seconds).
	MutationTimeoutSeconds int32
	// MutationSystem applies the mutators: set it from the manager, which
	// fills it. Nil: no mutating webhook.
	MutationSystem Mutator
	// MutationExcluded reports namespaces the Config excludes from the
	// mutating webhook (spec.match[].processes: [mutation-webhook]). Nil:
	// none.
	MutationExcluded func(namespace string) bool
}

// mutating reports whether the mutating webhook is served.
func (o *Options) mutating() bool { return o.Mutation && o.MutationSystem != nil }

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		Enabled:             true,
		Port:                DefaultPort,
		TLSMinVersion:       defaultTLSMinVersion,
		CertSecretName:      DefaultCertSecretName,
		ServiceName:         DefaultServiceName,
		ConfigurationName:   DefaultConfigurationName,
		ManageConfiguration: true,
		FailurePolicy:       FailurePolicyIgnore,
		TimeoutSeconds:      DefaultTimeoutSeconds,
		MaxServingThreads:   defaultMaxServingThreads,
		ServiceAccount:      DefaultServiceAccount,

		Mutation:                  true,
		MutatingConfigurationName: DefaultMutatingConfigurationName,
		MutationFailurePolicy:     FailurePolicyIgnore,
		MutationTimeoutSeconds:    DefaultMutationTimeoutSeconds,
	}
}

// AddFlags binds every option that has a flag to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Enabled, "enable-webhook", o.Enabled, "serve the validating admission webhook")
	fs.StringVar(&o.Host, "host", o.Host, "address the webhook listens on (default all, or --webhook-url-host when it is an IP or localhost)")
	fs.IntVar(&o.Port, "port", o.Port, "HTTPS port of the webhook")
	fs.StringVar(&o.TLSMinVersion, "tls-min-version", o.TLSMinVersion, "lowest TLS version the webhook accepts: 1.2 or 1.3")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "directory of tls.crt and tls.key (default "+DefaultCertDir+", or a temporary directory with --webhook-url-host)")
	fs.BoolVar(&o.DisableCertRotation, "disable-cert-rotation", o.DisableCertRotation, "serve the certificates in --cert-dir as they are instead of managing a CA")
	fs.StringVar(&o.CertSecretName, "cert-secret-name", o.CertSecretName, "Secret in --namespace holding the rotated CA and serving certificate")
	fs.StringVar(&o.ServiceName, "webhook-service-name", o.ServiceName, "Service in --namespace in front of the webhook")
	fs.StringVar(&o.URLHost, "webhook-url-host", o.URLHost, "register the webhook by URL https://HOST:PORT/v1/... instead of by Service, e.g. 127.0.0.1 for a local control plane")
	fs.StringVar(&o.ConfigurationName, "validating-webhook-configuration-name", o.ConfigurationName, "name of the ValidatingWebhookConfiguration")
	fs.BoolVar(&o.ManageConfiguration, "manage-webhook-configuration", o.ManageConfiguration, "create and update the ValidatingWebhookConfiguration at startup")
	fs.StringVar(&o.FailurePolicy, "failure-policy", o.FailurePolicy, "what the API server does when the webhook fails: Ignore or Fail")
	fs.Int32Var(&o.TimeoutSeconds, "timeout-seconds", o.TimeoutSeconds, "API server timeout for each webhook call, 1 to 30; reviews stop at it")
	fs.BoolVar(&o.EnableDeleteOperations, "enable-delete-operations", o.EnableDeleteOperations, "judge DELETE requests, on the object being deleted")
	fs.BoolVar(&o.EnableConnectOperations, "enable-connect-operations", o.EnableConnectOperations, "judge CONNECT requests such as pods/exec and pods/attach")
	fs.StringSliceVar(&o.ExemptNamespaces, "exempt-namespace", o.ExemptNamespaces, "namespace allowed to carry the admission.gatekeeper.sh/ignore label, which the webhook configurations skip; without the label it is judged and audited, as in Gatekeeper (repeatable)")
	fs.StringSliceVar(&o.ExemptNamespacePrefixes, "exempt-namespace-prefix", o.ExemptNamespacePrefixes, "allow the admission.gatekeeper.sh/ignore label on every namespace with this prefix (repeatable)")
	fs.StringSliceVar(&o.ExemptNamespaceSuffixes, "exempt-namespace-suffix", o.ExemptNamespaceSuffixes, "allow the admission.gatekeeper.sh/ignore label on every namespace with this suffix (repeatable)")
	fs.IntVar(&o.MaxServingThreads, "max-serving-threads", o.MaxServingThreads, "reviews running at once: -1 for GOMAXPROCS, 0 for no bound")
	fs.BoolVar(&o.LogDenies, "log-denies", o.LogDenies, "log every violation found at admission, as Gatekeeper does (\"denied admission: ...\" with its process, event_type, constraint_* and resource_* keys); dryrun ones are logged without it too")
	fs.BoolVar(&o.EmitAdmissionEvents, "emit-admission-events", o.EmitAdmissionEvents, "emit a Warning Event for every violation found at admission (reasons FailedAdmission, WarningAdmission, DryrunViolation; source gatekeeper-webhook), in --namespace")
	fs.BoolVar(&o.AdmissionEventsInvolvedNamespace, "admission-events-involved-namespace", o.AdmissionEventsInvolvedNamespace, "with --emit-admission-events, emit each Event in the namespace of the object it is about (cluster-scoped objects' in --namespace)")
	fs.StringVar(&o.ServiceAccount, "manager-service-account", o.ServiceAccount, "the manager's ServiceAccount in --namespace (or a full user name), whose requests are always allowed")
	fs.BoolVar(&o.Mutation, "enable-mutation-webhook", o.Mutation, "serve the mutating admission webhook /v1/mutate (with --operation mutation-webhook, or no --operation)")
	fs.StringVar(&o.MutatingConfigurationName, "mutating-webhook-configuration-name", o.MutatingConfigurationName, "name of the MutatingWebhookConfiguration")
	fs.StringVar(&o.MutationFailurePolicy, "mutation-failure-policy", o.MutationFailurePolicy, "what the API server does when the mutating webhook fails: Ignore or Fail")
	fs.Int32Var(&o.MutationTimeoutSeconds, "mutation-timeout-seconds", o.MutationTimeoutSeconds, "API server timeout for each mutating webhook call, 1 to 30")
}

// Complete fills in the defaults that depend on other options and checks
// them all. It is idempotent; Setup calls it too.
func (o *Options) Complete() error {
	if !o.Enabled && !o.Mutation {
		return nil
	}
	if o.Host == "" && o.URLHost != "" && isLoopbackOrIP(o.URLHost) {
		o.Host = o.URLHost
	}
	if o.CertDir == "" && o.URLHost == "" {
		o.CertDir = DefaultCertDir
	}
	var errs []error
	if o.Port < 1 || o.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d is not a port number", o.Port))
	}
	if _, err := o.tlsVersion(); err != nil {
		errs = append(errs, err)
	}
	if o.Enabled && o.FailurePolicy != FailurePolicyIgnore && o.FailurePolicy != FailurePolicyFail {
		errs = append(errs, fmt.Errorf("--failure-policy %q must be %s or %s", o.FailurePolicy, FailurePolicyIgnore, FailurePolicyFail))
	}
	if o.Enabled && (o.TimeoutSeconds < 1 || o.TimeoutSeconds > maxTimeoutSeconds) {
		errs = append(errs, fmt.Errorf("--timeout-seconds %d must be between 1 and %d", o.TimeoutSeconds, maxTimeoutSeconds))
	}
	if o.MaxServingThreads < -1 {
		errs = append(errs, fmt.Errorf("--max-serving-threads %d must be -1, 0 or positive", o.MaxServingThreads))
	}
	if o.Enabled && strings.TrimSpace(o.ConfigurationName) == "" {
		errs = append(errs, errors.New("--validating-webhook-configuration-name must not be empty"))
	}
	if o.Mutation {
		if strings.TrimSpace(o.MutatingConfigurationName) == "" {
			errs = append(errs, errors.New("--mutating-webhook-configuration-name must not be empty"))
		}
		if o.MutationFailurePolicy != FailurePolicyIgnore && o.MutationFailurePolicy != FailurePolicyFail {
			errs = append(errs, fmt.Errorf("--mutation-failure-policy %q must be %s or %s", o.MutationFailurePolicy, FailurePolicyIgnore, FailurePolicyFail))
		}
		if o.MutationTimeoutSeconds < 1 || o.MutationTimeoutSeconds > maxTimeoutSeconds {
			errs = append(errs, fmt.Errorf("--mutation-timeout-seconds %d must be between 1 and %d", o.MutationTimeoutSeconds, maxTimeoutSeconds))
		}
	}
	if strings.TrimSpace(o.Namespace) == "" {
		errs = append(errs, errors.New("the webhook needs the manager's namespace"))
	}
	if o.URLHost == "" && strings.TrimSpace(o.ServiceName) == "" {
		errs = append(errs, errors.New("--webhook-service-name must not be empty without --webhook-url-host"))
	}
	if !o.DisableCertRotation && o.URLHost == "" && strings.TrimSpace(o.CertSecretName) == "" {
		errs = append(errs, errors.New("--cert-secret-name must not be empty with certificate rotation"))
	}
	if o.DisableCertRotation && o.CertDir == "" {
		errs = append(errs, errors.New("--disable-cert-rotation needs --cert-dir"))
	}
	for _, list := range []struct {
		flag   string
		values []string
	}{{"--exempt-namespace", o.ExemptNamespaces}, {"--exempt-namespace-prefix", o.ExemptNamespacePrefixes}, {"--exempt-namespace-suffix", o.ExemptNamespaceSuffixes}} {
		for _, v := range list.values {
			if strings.TrimSpace(v) == "" {
				errs = append(errs, fmt.Errorf("%s must not be empty", list.flag))
			}
		}
	}
	return errors.Join(errs...)
}

func (o *Options) tlsVersion() (uint16, error) {
	switch o.TLSMinVersion {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3", "":
		return tls.VersionTLS13, nil
	default:
		return 0, fmt.Errorf("--tls-min-version %q must be 1.2 or 1.3", o.TLSMinVersion)
	}
}

// serviceAccountUser is the user name of the manager's own requests.
func (o *Options) serviceAccountUser() string {
	if o.ServiceAccount == "" || strings.Contains(o.ServiceAccount, ":") {
		return o.ServiceAccount
	}
	return serviceAccountUsernamePrefix + o.Namespace + ":" + o.ServiceAccount
}

// exemptions are the namespaces that may carry admission.gatekeeper.sh/ignore:
// the flags' plus the manager's.
func (o *Options) exemptions() *Exemptions {
	names := append([]string{}, o.ExemptNamespaces...)
	if o.Namespace != "" {
		names = append(names, o.Namespace)
	}
	return NewExemptions(names, o.ExemptNamespacePrefixes, o.ExemptNamespaceSuffixes)
}

// handlerOptions are the options of the /v1/admit handler, all but those
// Setup adds from the manager (Namespaces, Metrics and Log).
func (o *Options) handlerOptions() HandlerOptions {
	return HandlerOptions{
		Namespace:         o.Namespace,
		Trace:             o.Trace,
		Excluded:          o.Excluded,
		ServiceAccount:    o.serviceAccountUser(),
		Timeout:           time.Duration(o.TimeoutSeconds) * time.Second,
		MaxServingThreads: o.MaxServingThreads,
		LogDenies:         o.LogDenies,
		Ready:             o.Ready,
	}
}

// isLoopbackOrIP reports whether host is an IP address or localhost, on
// which the server should listen rather than on every address.
func isLoopbackOrIP(host string) bool {
	return host == "localhost" || net.ParseIP(host) != nil
}
