package manager

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis-dev/portcullis/internal/flagvalue"
	"github.com/portcullis-dev/portcullis/vap"
)

// GatekeeperMark starts the --help line of every flag that Gatekeeper has
// too, with the same name, value format and meaning (or, for a feature
// Portcullis lacks, accepted so that Gatekeeper's arguments start it).
const GatekeeperMark = "[Gatekeeper] "

// Operation is a value of Gatekeeper's --operation flag.
type Operation string

// Gatekeeper's operations.
const (
	OperationAudit              Operation = "audit"
	OperationGenerate           Operation = "generate"
	OperationMutationController Operation = "mutation-controller"
	OperationMutationStatus     Operation = "mutation-status"
	OperationMutationWebhook    Operation = "mutation-webhook"
	OperationStatus             Operation = "status"
	OperationWebhook            Operation = "webhook"
)

// AllOperations are Gatekeeper's operations, sorted; a manager given no
// --operation runs them all, as Gatekeeper does.
var AllOperations = []Operation{
	OperationAudit, OperationGenerate, OperationMutationController, OperationMutationStatus,
	OperationMutationWebhook, OperationStatus, OperationWebhook,
}

// metricsBackend is the one --metrics-backend served.
const metricsBackend = "prometheus"

// Log levels of Gatekeeper's --log-level.
var logLevels = map[string]zapcore.Level{
	"DEBUG": zapcore.DebugLevel, "INFO": zapcore.InfoLevel,
	"WARNING": zapcore.WarnLevel, "WARN": zapcore.WarnLevel, "ERROR": zapcore.ErrorLevel,
}

// gatekeeperOptions are Gatekeeper's flags that do not bind straight to a
// field of Options: Complete maps them onto Options.
type gatekeeperOptions struct {
	operations        []string
	healthAddr        string
	prometheusPort    int
	metricsBackends   []string
	logLevel          string
	logToStderr       bool
	disabledBuiltins  []string
	certServiceName   string
	enableReferential bool
	auditFromCache    bool
	cacheTTL          time.Duration
	logLevelKey       string
	logLevelEncoder   string
}

// UnsupportedFlag is a Gatekeeper flag that was given a value asking for a
// feature Portcullis does not have: it is accepted, so that Gatekeeper's
// arguments start Portcullis, and logged once at start.
type UnsupportedFlag struct {
	Flag   string // with its dashes
	Value  string
	Reason string
}

// unsupported are the Gatekeeper flags that are accepted without effect.
// A bool flag is reported when true, any other when given.
var unsupported = []struct {
	name, reason string
	bool         bool
}{
	{"log-stats-admission", "Portcullis does not log evaluation stats; see the gatekeeper_validation_request_* metrics", true},
	{"log-stats-audit", "Portcullis does not log evaluation stats; see the gatekeeper_audit_* metrics", true},
	{"enable-external-data", "Portcullis has no external data (Provider) yet", true},
	{"external-data-provider-response-cache-ttl", "Portcullis has no external data (Provider) yet", false},
	{"disable-enforcementaction-validation", "Portcullis always validates enforcementAction and scopedEnforcementActions", true},
	{"enable-tls-healthcheck", "Portcullis's /healthz does not probe the webhook over TLS", true},
	{"client-ca-name", "Portcullis's webhook does not authenticate the API server's client certificate yet: any client that reaches it is served", false},
	{"client-cn-name", "Portcullis's webhook does not authenticate the API server's client certificate yet", false},
	{"client-cert-name", "Portcullis has no external data (Provider) yet", false},
	{"additional-validating-webhook-configs-to-rotate-certs", "Portcullis puts its CA only into its own webhook configuration", false},
	{"additional-mutating-webhook-configs-to-rotate-certs", "Portcullis puts its CA only into its own webhook configurations", false},
	{"enable-violation-export", "Portcullis has no violation export (Connection) yet", true},
	{"enable-admission-violation-export", "Portcullis has no violation export (Connection) yet", true},
	{"audit-connection", "Portcullis has no violation export (Connection) yet", false},
	{"audit-channel", "Portcullis has no violation export (Connection) yet", false},
	{"api-cache-dir", "the audit keeps nothing on disk: it lists objects page by page", false},
	{"enable-mutation", "deprecated in Gatekeeper too, where it has no effect: mutation runs with --operation=mutation-webhook (and mutation-controller, mutation-status)", true},
	{"metrics-addr", "controller-runtime's metrics are served with Portcullis's, on --prometheus-port (--metrics-bind-address)", false},
	{"log-file", "Portcullis logs to stderr only", false},
}

// gatekeeperDefaults are the defaults of Gatekeeper's manager that differ
// from Portcullis's, which --gatekeeper-defaults sets: its names, ports and
// shutdown delay, and the webhook configuration left to its chart, which
// renders it (the managers only write the CA into its caBundle).
var gatekeeperDefaults = [][2]string{
	{"namespace", "gatekeeper-system"},
	{"port", "443"},
	{"health-probe-bind-address", ":9090"},
	{"metrics-bind-address", ":8888"},
	{"webhook-service-name", "gatekeeper-webhook-service"},
	{"cert-secret-name", "gatekeeper-webhook-server-cert"},
	{"manager-service-account", "gatekeeper-admin"},
	{"validating-webhook-configuration-name", "gatekeeper-validating-webhook-configuration"},
	{"mutating-webhook-configuration-name", "gatekeeper-mutating-webhook-configuration"},
	{"manage-webhook-configuration", "false"},
	{"shutdown-delay", "10"},
}

// gatekeeperDefaultsFlag is --gatekeeper-defaults: true sets
// gatekeeperDefaults on the flags not given, wherever it comes among them.
type gatekeeperDefaultsFlag struct {
	fs  *pflag.FlagSet
	set bool
}

func (f *gatekeeperDefaultsFlag) String() string { return strconv.FormatBool(f.set) }

func (*gatekeeperDefaultsFlag) Type() string { return "bool" }

func (f *gatekeeperDefaultsFlag) Set(v string) error {
	on, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%q is not a boolean", v)
	}
	f.set = on
	if !on {
		return nil
	}
	for _, d := range gatekeeperDefaults {
		fl := f.fs.Lookup(d[0])
		if fl == nil || fl.Changed {
			continue
		}
		if err := fl.Value.Set(d[1]); err != nil {
			return fmt.Errorf("setting Gatekeeper's default --%s=%s: %w", d[0], d[1], err)
		}
		fl.DefValue = d[1]
	}
	return nil
}

// Gatekeeper's --log-level-encoder values.
var levelEncoders = map[string]zapcore.LevelEncoder{
	"lower": zapcore.LowercaseLevelEncoder, "capital": zapcore.CapitalLevelEncoder,
	"color": zapcore.LowercaseColorLevelEncoder, "capitalcolor": zapcore.CapitalColorLevelEncoder,
}

// addGatekeeperFlags binds Gatekeeper's flags that Portcullis has no flag
// of the same name for.
func (o *Options) addGatekeeperFlags(fs *pflag.FlagSet) {
	g := &o.gatekeeper
	g.enableReferential = true
	ops := make([]string, len(AllOperations))
	for i, op := range AllOperations {
		ops[i] = string(op)
	}
	fs.Var(flagvalue.NewChoice(&g.operations, ops, false, nil), "operation",
		"what this replica does, repeatable or comma-separated: webhook (serve the validating webhook), audit (run the audit), "+
			"generate (create, update and delete the constraint CRDs; without it the replica waits for another to), "+
			"status (accepted: every replica writes its own status.byPod entries, there is nothing to aggregate), "+
			"mutation-controller (load the mutators and write their status.byPod entries), mutation-webhook (serve the mutating webhook; loads the mutators too), "+
			"mutation-status (loads the mutators; removes the mutators' status.byPod entries of replicas gone); default all, as in Gatekeeper. "+
			"Every replica loads the templates and constraints")
	fs.StringVar(&g.healthAddr, "health-addr", "", "address of /healthz and /readyz, e.g. :9090; Gatekeeper's name for --health-probe-bind-address")
	fs.IntVar(&g.prometheusPort, "prometheus-port", 0, "port of the Prometheus /metrics endpoint on all addresses, e.g. 8888; sets --metrics-bind-address to :PORT")
	fs.Var(flagvalue.NewChoice(&g.metricsBackends, []string{metricsBackend}, true, explainBackend), "metrics-backend",
		"metrics backend, repeatable: only prometheus is served (stackdriver and opentelemetry are refused)")
	fs.Var(newLogLevel(&g.logLevel), "log-level", "minimum log level: DEBUG (development logging, console encoder), INFO, WARNING or ERROR; overrides --zap-log-level and --zap-devel")
	fs.StringVar(&g.logLevelKey, "log-level-key", "level", "JSON key of the log level in each log line")
	fs.StringVar(&g.logLevelEncoder, "log-level-encoder", "lower", "how the log level is written: lower, capital, color or capitalcolor")
	fs.BoolVar(&g.logToStderr, "logtostderr", true, "accepted: Portcullis always logs to stderr")
	fs.StringArrayVar(&g.disabledBuiltins, "disable-opa-builtin", nil,
		"Rego builtin to refuse in templates, repeatable, as in Gatekeeper: http.send or {http.send} (the chart's default); same list as --disable-builtin")
	fs.StringVar(&g.certServiceName, "cert-service-name", "", "Service in front of the webhook, whose DNS name the serving certificate carries; Gatekeeper's name for --webhook-service-name")
	fs.BoolVar(&g.enableReferential, "enable-referential-rules", g.enableReferential, "let templates read data.inventory (objects synced by the Config and SyncSets); false refuses templates that do")
	fs.IntVar(&o.ReadinessRetries, "readiness-retries", o.ReadinessRetries, "times a ConstraintTemplate or constraint that fails to load is retried, a second apart, before /readyz stops waiting for it (its error is in its status); 0 counts the first failure as done, -1 waits until it loads")
	fs.BoolVar(&g.auditFromCache, "audit-from-cache", false,
		"accepted, changes nothing here: the audit always lists objects from the API server in --audit-chunk-size pages, never from the synced data; true is logged once")
	fs.DurationVar(&g.cacheTTL, "external-data-provider-response-cache-ttl", 3*time.Minute, "accepted, not supported: Portcullis has no external data yet")
	fs.Var(flagvalue.NewSeconds(&o.ShutdownDelay), "shutdown-delay",
		"after SIGTERM, keep running and serving this long before stopping, in whole seconds as in Gatekeeper (10) or a Go duration; Gatekeeper's default is 10, Portcullis's 0")
	fs.BoolVar(&o.EnablePprof, "enable-pprof", o.EnablePprof, "serve net/http/pprof on localhost:--pprof-port")
	fs.IntVar(&o.PprofPort, "pprof-port", o.PprofPort, "port of pprof on localhost, with --enable-pprof")

	gd := &gatekeeperDefaultsFlag{fs: fs}
	fs.Var(gd, "gatekeeper-defaults", "take Gatekeeper's defaults where they differ from Portcullis's (namespace gatekeeper-system, --port 443, "+
		"--health-probe-bind-address :9090, --metrics-bind-address :8888, the gatekeeper-* Service, Secret, ServiceAccount and webhook configuration names, "+
		"--manage-webhook-configuration=false, --shutdown-delay 10); the image's /manager, which Gatekeeper's chart runs, sets it")
	fs.Lookup("gatekeeper-defaults").NoOptDefVal = "true"

	for _, f := range unsupported {
		if fs.Lookup(f.name) != nil {
			continue
		}
		usage := "accepted, not supported: " + f.reason
		if f.bool {
			fs.Bool(f.name, false, usage)
		} else {
			fs.String(f.name, "", usage)
		}
	}
}

// explainBackend says why a metrics backend Gatekeeper knows is refused.
func explainBackend(v string) error {
	switch v {
	case "stackdriver", "opentelemetry":
		return fmt.Errorf("%q is not supported: Portcullis serves Prometheus metrics only (--metrics-backend=prometheus)", v)
	}
	return nil
}

// gatekeeperNames are the flags Portcullis shares with Gatekeeper; their
// --help lines start with GatekeeperMark.
var gatekeeperNames = []string{
	"port", "host", "cert-dir", "health-addr", "prometheus-port", "metrics-backend", "logtostderr", "log-level",
	"log-denies", "log-mutations", "mutation-annotations", "exempt-namespace", "exempt-namespace-prefix", "exempt-namespace-suffix", "operation",
	"audit-interval", "constraint-violations-limit", "audit-chunk-size", "audit-match-kind-only", "audit-from-cache",
	"disable-opa-builtin", "max-serving-threads", "tls-min-version", "validating-webhook-configuration-name", "mutating-webhook-configuration-name",
	"disable-cert-rotation", "cert-service-name", "readiness-retries", "shutdown-delay", "enable-pprof", "pprof-port",
	"enable-referential-rules", "kubeconfig", "log-level-key", "log-level-encoder", "enable-k8s-native-validation",
	"default-k8s-native-validation-failure-policy", "emit-admission-events", "admission-events-involved-namespace",
	"emit-audit-events", "audit-events-involved-namespace", "enable-generator-resource-expansion",
	vap.FlagCreatePolicies, vap.FlagCreateBindings, vap.FlagWaitForBindings, vap.FlagSyncScope,
}

// markGatekeeperFlags starts the help of Gatekeeper's flags with
// GatekeeperMark.
func markGatekeeperFlags(fs *pflag.FlagSet) {
	names := append([]string{}, gatekeeperNames...)
	for _, f := range unsupported {
		names = append(names, f.name)
	}
	for _, name := range names {
		if f := fs.Lookup(name); f != nil && !strings.HasPrefix(f.Usage, GatekeeperMark) {
			f.Usage = GatekeeperMark + f.Usage
		}
	}
}

// completeGatekeeper maps Gatekeeper's flags onto the options and checks
// them. fs is the flag set AddFlags bound, to tell given flags from
// defaults; nil when the options were built in code.
func (o *Options) completeGatekeeper() error {
	fs := o.flags
	if fs == nil {
		return nil
	}
	g := &o.gatekeeper
	changed := fs.Changed
	var errs []error
	alias := func(gk, ours string) error {
		if changed(gk) && changed(ours) {
			return fmt.Errorf("--%s and --%s set the same option: give one", gk, ours)
		}
		return nil
	}

	if changed("health-addr") {
		if err := alias("health-addr", "health-probe-bind-address"); err != nil {
			errs = append(errs, err)
		}
		o.HealthProbeBindAddress = g.healthAddr
	}
	if changed("prometheus-port") {
		if err := alias("prometheus-port", "metrics-bind-address"); err != nil {
			errs = append(errs, err)
		}
		if g.prometheusPort < 1 || g.prometheusPort > 65535 {
			errs = append(errs, fmt.Errorf("--prometheus-port %d is not a port number", g.prometheusPort))
		}
		o.MetricsBindAddress = ":" + strconv.Itoa(g.prometheusPort)
	}
	if changed("cert-service-name") {
		if err := alias("cert-service-name", "webhook-service-name"); err != nil {
			errs = append(errs, err)
		}
		o.Webhook.ServiceName = g.certServiceName
	}
	if changed("log-level") {
		lvl := logLevels[g.logLevel]
		o.Log.Level = lvl
		o.Log.Development = lvl == zapcore.DebugLevel
	}
	if changed("log-level-key") || changed("log-level-encoder") {
		enc, ok := levelEncoders[g.logLevelEncoder]
		if !ok {
			errs = append(errs, fmt.Errorf("--log-level-encoder %q must be lower, capital, color or capitalcolor", g.logLevelEncoder))
		}
		if strings.TrimSpace(g.logLevelKey) == "" {
			errs = append(errs, errors.New("--log-level-key must not be empty"))
		}
		key := g.logLevelKey
		o.Log.EncoderConfigOptions = append(o.Log.EncoderConfigOptions, func(c *zapcore.EncoderConfig) {
			c.LevelKey = key
			if enc != nil {
				c.EncodeLevel = enc
			}
		})
	}
	for _, b := range g.disabledBuiltins {
		names, err := parseBuiltins(b)
		if err != nil {
			errs = append(errs, err)
		}
		for _, n := range names {
			if !slices.Contains(o.Engine.DisabledBuiltins, n) {
				o.Engine.DisabledBuiltins = append(o.Engine.DisabledBuiltins, n)
			}
		}
	}
	if changed("enable-referential-rules") {
		o.Engine.DisableReferential = !g.enableReferential
	}
	if o.ReadinessRetries < -1 {
		errs = append(errs, fmt.Errorf("--readiness-retries %d must be -1 (retry forever), 0 or positive", o.ReadinessRetries))
	}
	if g.cacheTTL < 0 {
		errs = append(errs, fmt.Errorf("--external-data-provider-response-cache-ttl %s must not be negative", g.cacheTTL))
	}
	if o.EnablePprof && (o.PprofPort < 1 || o.PprofPort > 65535) {
		errs = append(errs, fmt.Errorf("--pprof-port %d is not a port number", o.PprofPort))
	}
	if err := o.completeOperations(); err != nil {
		errs = append(errs, err)
	}
	o.unsupported = o.findUnsupported()
	return errors.Join(errs...)
}

// completeOperations turns --operation into what this replica runs: the
// webhook with webhook, the mutating webhook with mutation-webhook, the
// audit with audit. Without --operation every
// operation is assigned and the Portcullis flags decide.
func (o *Options) completeOperations() error {
	if len(o.gatekeeper.operations) == 0 {
		return nil
	}
	o.Operations = nil
	for _, op := range o.gatekeeper.operations {
		o.Operations = append(o.Operations, Operation(op))
	}
	slices.Sort(o.Operations)
	webhook := slices.Contains(o.Operations, OperationWebhook)
	if o.flags.Changed("enable-webhook") && o.Webhook.Enabled != webhook {
		return fmt.Errorf("--enable-webhook=%t contradicts --operation %s: give one", o.Webhook.Enabled, strings.Join(o.gatekeeper.operations, ","))
	}
	o.Webhook.Enabled = webhook
	mutating := slices.Contains(o.Operations, OperationMutationWebhook)
	if o.flags.Changed("enable-mutation-webhook") && o.Webhook.Mutation != mutating {
		return fmt.Errorf("--enable-mutation-webhook=%t contradicts --operation %s: give one", o.Webhook.Mutation, strings.Join(o.gatekeeper.operations, ","))
	}
	o.Webhook.Mutation = mutating
	if !slices.Contains(o.Operations, OperationAudit) {
		o.Audit.Interval = 0
	}
	return nil
}

// findUnsupported lists the flags given values that ask for a feature
// Portcullis lacks.
func (o *Options) findUnsupported() []UnsupportedFlag {
	fs, g := o.flags, &o.gatekeeper
	var out []UnsupportedFlag
	for _, f := range unsupported {
		if !fs.Changed(f.name) {
			continue
		}
		v := fs.Lookup(f.name).Value.String()
		if f.bool && v != "true" {
			continue
		}
		out = append(out, UnsupportedFlag{Flag: "--" + f.name, Value: v, Reason: f.reason})
	}
	if g.auditFromCache {
		out = append(out, UnsupportedFlag{
			Flag: "--audit-from-cache", Value: "true",
			Reason: "the audit lists objects from the API server in --audit-chunk-size pages, never from the synced data",
		})
	}
	return out
}

// parseBuiltins reads a --disable-opa-builtin value: a builtin name, or
// names in braces as the Gatekeeper chart's default {http.send} writes
// them (Helm's list syntax), comma-separated.
func parseBuiltins(v string) ([]string, error) {
	s := strings.TrimSpace(v)
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = s[1 : len(s)-1]
	}
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		name := strings.TrimSpace(part)
		if name == "" || strings.ContainsAny(name, "{} ") {
			return nil, fmt.Errorf("--disable-opa-builtin %q: want a builtin name such as http.send, or {http.send}", v)
		}
		out = append(out, name)
	}
	return out, nil
}

// logLevel is Gatekeeper's --log-level, read case-insensitively.
type logLevel struct{ v *string }

func newLogLevel(v *string) logLevel { return logLevel{v: v} }

func (l logLevel) String() string {
	if l.v == nil || *l.v == "" {
		return "INFO"
	}
	return *l.v
}

func (l logLevel) Set(s string) error {
	up := strings.ToUpper(strings.TrimSpace(s))
	if _, ok := logLevels[up]; !ok {
		return fmt.Errorf("%q is not a log level: want DEBUG, INFO, WARNING or ERROR", s)
	}
	*l.v = up
	return nil
}

func (logLevel) Type() string { return "level" }

// generates reports whether this replica writes the constraint CRDs:
// with --operation=generate, or no --operation (Operations unset counts
// as all).
func (o *Options) generates() bool {
	return len(o.Operations) == 0 || slices.Contains(o.Operations, OperationGenerate)
}
