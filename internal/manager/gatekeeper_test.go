package manager

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis-dev/portcullis/internal/loopback"
)

// parse binds fresh options to a flag set, parses args and completes them.
func parse(t *testing.T, args ...string) (Options, error) {
	t.Helper()
	o := NewOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	err := o.Complete()
	return o, err
}

func mustParse(t *testing.T, args ...string) Options {
	t.Helper()
	o, err := parse(t, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return o
}

// TestGatekeeperFlags parses each Gatekeeper flag the way its chart or its
// docs write it and checks the option it sets.
func TestGatekeeperFlags(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	tests := []struct {
		args []string
		want func(o Options) bool
	}{
		{[]string{"--port=8443"}, func(o Options) bool { return o.Webhook.Port == 8443 }},
		{[]string{"--port=443"}, func(o Options) bool { return o.Webhook.Port == 443 }},
		{[]string{"--host=127.0.0.1"}, func(o Options) bool { return o.Webhook.Host == "127.0.0.1" }},
		{[]string{"--cert-dir=/certs"}, func(o Options) bool { return o.Webhook.CertDir == "/certs" }},
		{[]string{"--health-addr=:9090"}, func(o Options) bool { return o.HealthProbeBindAddress == ":9090" }},
		{[]string{"--prometheus-port=8888"}, func(o Options) bool { return o.MetricsBindAddress == ":8888" }},
		{[]string{"--metrics-backend=prometheus"}, func(o Options) bool { return o.gatekeeper.metricsBackends[0] == "prometheus" }},
		{[]string{"--metrics-backend=Prometheus", "--metrics-backend=prometheus"}, func(o Options) bool {
			return slices.Equal(o.gatekeeper.metricsBackends, []string{"prometheus"})
		}},
		{[]string{"--logtostderr"}, func(o Options) bool { return o.gatekeeper.logToStderr }},
		{[]string{"--logtostderr=false"}, func(o Options) bool { return !o.gatekeeper.logToStderr }},
		{[]string{"--log-level=DEBUG"}, func(o Options) bool { return o.Log.Level == zapcore.DebugLevel && o.Log.Development }},
		{[]string{"--log-level=INFO"}, func(o Options) bool { return o.Log.Level == zapcore.InfoLevel && !o.Log.Development }},
		{[]string{"--log-level=WARNING"}, func(o Options) bool { return o.Log.Level == zapcore.WarnLevel }},
		{[]string{"--log-level=error"}, func(o Options) bool { return o.Log.Level == zapcore.ErrorLevel }},
		{[]string{"--log-level=INFO", "--zap-log-level=debug"}, func(o Options) bool { return o.Log.Level == zapcore.InfoLevel }},
		{[]string{"--log-denies=true"}, func(o Options) bool { return o.Webhook.LogDenies }},
		{[]string{"--exempt-namespace=gatekeeper-system", "--exempt-namespace=kube-system"}, func(o Options) bool {
			return slices.Equal(o.Webhook.ExemptNamespaces, []string{"gatekeeper-system", "kube-system"})
		}},
		{[]string{"--exempt-namespace-prefix=kube-"}, func(o Options) bool { return o.Webhook.ExemptNamespacePrefixes[0] == "kube-" }},
		{[]string{"--exempt-namespace-suffix=-system"}, func(o Options) bool { return o.Webhook.ExemptNamespaceSuffixes[0] == "-system" }},
		{[]string{"--audit-interval=60"}, func(o Options) bool { return o.Audit.Interval == time.Minute }},
		{[]string{"--audit-interval=0"}, func(o Options) bool { return o.Audit.Interval == 0 }},
		{[]string{"--audit-interval=90s"}, func(o Options) bool { return o.Audit.Interval == 90*time.Second }},
		{[]string{"--audit-interval=1m30s"}, func(o Options) bool { return o.Audit.Interval == 90*time.Second }},
		{[]string{"--constraint-violations-limit=5"}, func(o Options) bool { return o.Audit.ViolationsLimit == 5 }},
		{[]string{"--audit-chunk-size=100"}, func(o Options) bool { return o.Audit.ChunkSize == 100 }},
		{[]string{"--audit-match-kind-only=true"}, func(o Options) bool { return o.Audit.MatchKindOnly }},
		{[]string{"--audit-from-cache=false"}, func(o Options) bool { return len(o.Unsupported()) == 0 }},
		{[]string{"--audit-from-cache=true"}, func(o Options) bool { return hasUnsupported(o, "--audit-from-cache") }},
		{[]string{"--disable-opa-builtin={http.send}"}, func(o Options) bool {
			return slices.Equal(o.Engine.DisabledBuiltins, []string{"http.send"})
		}},
		{[]string{"--disable-opa-builtin=http.send", "--disable-opa-builtin=opa.runtime", "--disable-builtin=time.now_ns"}, func(o Options) bool {
			return slices.Equal(o.Engine.DisabledBuiltins, []string{"time.now_ns", "http.send", "opa.runtime"})
		}},
		{[]string{"--disable-opa-builtin={http.send,opa.runtime}"}, func(o Options) bool {
			return slices.Equal(o.Engine.DisabledBuiltins, []string{"http.send", "opa.runtime"})
		}},
		{[]string{"--max-serving-threads=-1"}, func(o Options) bool { return o.Webhook.MaxServingThreads == -1 }},
		{[]string{"--max-serving-threads=4"}, func(o Options) bool { return o.Webhook.MaxServingThreads == 4 }},
		{[]string{"--tls-min-version=1.2"}, func(o Options) bool { return o.Webhook.TLSMinVersion == "1.2" }},
		{[]string{"--validating-webhook-configuration-name=gatekeeper-validating-webhook-configuration"}, func(o Options) bool {
			return o.Webhook.ConfigurationName == "gatekeeper-validating-webhook-configuration"
		}},
		{[]string{"--disable-cert-rotation=true"}, func(o Options) bool { return o.Webhook.DisableCertRotation }},
		{[]string{"--cert-service-name=gatekeeper-webhook-service"}, func(o Options) bool {
			return o.Webhook.ServiceName == "gatekeeper-webhook-service"
		}},
		{[]string{"--readiness-retries=0"}, func(o Options) bool { return len(o.Unsupported()) == 0 }},
		{[]string{"--readiness-retries=-1"}, func(o Options) bool { return o.ReadinessRetries == -1 && len(o.Unsupported()) == 0 }},
		{[]string{"--readiness-retries=3"}, func(o Options) bool { return o.ReadinessRetries == 3 }},
		{[]string{"--emit-admission-events", "--admission-events-involved-namespace"}, func(o Options) bool {
			return o.Webhook.EmitAdmissionEvents && o.Webhook.AdmissionEventsInvolvedNamespace && len(o.Unsupported()) == 0
		}},
		{[]string{"--emit-audit-events", "--audit-events-involved-namespace"}, func(o Options) bool {
			return o.Audit.EmitEvents && o.Audit.EventsInvolvedNamespace && len(o.Unsupported()) == 0
		}},
		{[]string{"--gatekeeper-defaults"}, func(o Options) bool {
			w := o.Webhook
			return o.Namespace == "gatekeeper-system" && w.Port == 443 && o.HealthProbeBindAddress == ":9090" &&
				o.MetricsBindAddress == ":8888" && w.ServiceName == "gatekeeper-webhook-service" &&
				w.CertSecretName == "gatekeeper-webhook-server-cert" && w.ServiceAccount == "gatekeeper-admin" &&
				w.ConfigurationName == "gatekeeper-validating-webhook-configuration" &&
				w.MutatingConfigurationName == "gatekeeper-mutating-webhook-configuration" && !w.ManageConfiguration &&
				o.ShutdownDelay == 10*time.Second && len(o.Unsupported()) == 0
		}},
		// Given flags win, before or after it.
		{[]string{"--port=8443", "--gatekeeper-defaults", "--health-addr=:9091", "--shutdown-delay=0"}, func(o Options) bool {
			return o.Webhook.Port == 8443 && o.HealthProbeBindAddress == ":9091" && o.ShutdownDelay == 0 && o.MetricsBindAddress == ":8888"
		}},
		{[]string{"--gatekeeper-defaults=false"}, func(o Options) bool { return o.Webhook.Port == 8443 && o.Namespace == DefaultNamespace }},
		{nil, func(o Options) bool {
			return o.Audit.LogViolations && !o.Webhook.EmitAdmissionEvents && !o.Audit.EmitEvents
		}},
		{[]string{"--shutdown-delay=10"}, func(o Options) bool { return o.ShutdownDelay == 10*time.Second }},
		{[]string{"--shutdown-delay=500ms"}, func(o Options) bool { return o.ShutdownDelay == 500*time.Millisecond }},
		{[]string{"--enable-pprof=true", "--pprof-port=6061"}, func(o Options) bool { return o.EnablePprof && o.PprofPort == 6061 }},
		{nil, func(o Options) bool { return !o.EnablePprof && o.PprofPort == 6060 && o.ShutdownDelay == 0 }},
		{[]string{"--enable-referential-rules=false"}, func(o Options) bool { return o.Engine.DisableReferential }},
		{[]string{"--enable-referential-rules=true"}, func(o Options) bool { return !o.Engine.DisableReferential }},
		{[]string{"--kubeconfig=/k"}, func(o Options) bool { return o.Kubeconfig == "/k" }},
		{[]string{"--log-level-key=severity", "--log-level-encoder=capital"}, func(o Options) bool {
			c := zapcore.EncoderConfig{}
			for _, f := range o.Log.EncoderConfigOptions {
				f(&c)
			}
			var enc testLevelEncoder
			if c.EncodeLevel != nil {
				c.EncodeLevel(zapcore.WarnLevel, &enc)
			}
			return c.LevelKey == "severity" && enc.s == "WARN"
		}},
		{nil, func(o Options) bool { return len(o.Log.EncoderConfigOptions) == 0 }},
		// Gatekeeper's defaults: policies and bindings generated, bindings
		// 30 s after their CRD, policies scoped like the webhook.
		{nil, func(o Options) bool {
			return o.VAP.CreatePolicies && o.VAP.CreateBindings && o.VAP.WaitForBindings == 30*time.Second &&
				o.VAP.SyncEnforcementScope && o.VAP.DefaultFailurePolicy == "Fail"
		}},
		{[]string{"--default-create-vap-for-templates=false", "--default-create-vap-binding-for-constraints=false"}, func(o Options) bool {
			return !o.VAP.CreatePolicies && !o.VAP.CreateBindings && len(o.Unsupported()) == 0
		}},
		{[]string{"--default-wait-for-vapb-generation=5"}, func(o Options) bool { return o.VAP.WaitForBindings == 5*time.Second }},
		{[]string{"--sync-vap-enforcement-scope=false"}, func(o Options) bool { return !o.VAP.SyncEnforcementScope && len(o.Unsupported()) == 0 }},
		{[]string{"--default-k8s-native-validation-failure-policy=Ignore"}, func(o Options) bool { return o.VAP.DefaultFailurePolicy == "Ignore" }},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o := mustParse(t, tc.args...)
			if !tc.want(o) {
				t.Errorf("options = %+v", o)
			}
		})
	}
}

func hasUnsupported(o Options, flag string) bool {
	for _, u := range o.Unsupported() {
		if u.Flag == flag {
			return true
		}
	}
	return false
}

// TestGatekeeperOperations checks what each --operation turns on, as
// Gatekeeper splits them.
func TestGatekeeperOperations(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		webhook     bool
		audit       time.Duration
		ops         []Operation
		unsupported []string
	}{
		{name: "none: all operations", webhook: true, audit: time.Minute, ops: AllOperations},
		{
			name: "the chart's controller-manager", args: []string{"--operation=webhook", "--operation=mutation-webhook"},
			webhook: true, ops: []Operation{OperationMutationWebhook, OperationWebhook},
		},
		{
			name:  "the chart's audit",
			args:  []string{"--audit-interval=60", "--operation=generate", "--operation=audit", "--operation=status", "--operation=mutation-status"},
			audit: time.Minute, ops: []Operation{OperationAudit, OperationGenerate, OperationMutationStatus, OperationStatus},
		},
		{name: "comma-separated", args: []string{"--operation=webhook,audit"}, webhook: true, audit: time.Minute, ops: []Operation{OperationAudit, OperationWebhook}},
		{name: "audit with interval 0", args: []string{"--operation=audit", "--audit-interval=0"}, ops: []Operation{OperationAudit}},
		{name: "status only", args: []string{"--operation=status"}, ops: []Operation{OperationStatus}},
		{name: "generate only", args: []string{"--operation=generate"}, ops: []Operation{OperationGenerate}},
		{
			name: "mutation-controller", args: []string{"--operation=webhook", "--operation=mutation-controller"},
			webhook: true, ops: []Operation{OperationMutationController, OperationWebhook},
		},
		{name: "repeated", args: []string{"--operation=webhook", "--operation=webhook"}, webhook: true, ops: []Operation{OperationWebhook}},
		{name: "agreeing --enable-webhook", args: []string{"--operation=webhook", "--enable-webhook=true"}, webhook: true, ops: []Operation{OperationWebhook}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := mustParse(t, tc.args...)
			mutating := slices.Contains(tc.ops, OperationMutationWebhook)
			loads := slices.ContainsFunc(tc.ops, func(op Operation) bool { return strings.HasPrefix(string(op), "mutation-") })
			if o.Webhook.Mutation != mutating || o.mutationEnabled() != loads {
				t.Errorf("mutating webhook %t, mutators loaded %t; want %t, %t", o.Webhook.Mutation, o.mutationEnabled(), mutating, loads)
			}
			if generates := slices.Contains(tc.ops, OperationGenerate); o.generates() != generates {
				t.Errorf("generates CRDs %t, want %t", o.generates(), generates)
			}
			if o.Webhook.Enabled != tc.webhook || o.Audit.Interval != tc.audit || !slices.Equal(o.Operations, tc.ops) {
				t.Errorf("webhook %t, audit interval %s, operations %v; want %t, %s, %v",
					o.Webhook.Enabled, o.Audit.Interval, o.Operations, tc.webhook, tc.audit, tc.ops)
			}
			var got []string
			for _, u := range o.Unsupported() {
				if u.Flag == "--operation" {
					got = append(got, u.Value)
				}
			}
			if !slices.Equal(got, tc.unsupported) {
				t.Errorf("unsupported operations %v, want %v", got, tc.unsupported)
			}
		})
	}
}

// TestGatekeeperUnsupportedFlags checks that each flag of a missing
// feature is accepted, reported once when it asks for the feature, and not
// when it does not.
func TestGatekeeperUnsupportedFlags(t *testing.T) {
	for _, f := range unsupported {
		t.Run(f.name, func(t *testing.T) {
			on, off := "--"+f.name+"=true", "--"+f.name+"=false"
			if !f.bool {
				on, off = "--"+f.name+"=x", ""
				if f.name == "external-data-provider-response-cache-ttl" {
					on = "--" + f.name + "=3m"
				}
			}
			o := mustParse(t, on)
			var n int
			for _, u := range o.Unsupported() {
				if u.Flag == "--"+f.name {
					n++
					if u.Reason == "" || u.Value == "" {
						t.Errorf("reported without a value or a reason: %+v", u)
					}
				}
			}
			if n != 1 {
				t.Errorf("%s reported %d times, want once: %+v", on, n, o.Unsupported())
			}
			if off != "" {
				if o := mustParse(t, off); len(o.Unsupported()) != 0 {
					t.Errorf("%s reported: %+v", off, o.Unsupported())
				}
			}
			if o := mustParse(t); len(o.Unsupported()) != 0 {
				t.Errorf("reported without flags: %+v", o.Unsupported())
			}
		})
	}
}

// TestGatekeeperBadFlags checks that bad values are refused with an error
// naming the flag.
func TestGatekeeperBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--operation=mutate"}, `"--operation"`},
		{[]string{"--operation=webhook,bogus"}, `"--operation"`},
		{[]string{"--operation="}, `"--operation"`},
		{[]string{"--audit-interval=-60"}, `"--audit-interval"`},
		{[]string{"--audit-interval=-1m"}, `"--audit-interval"`},
		{[]string{"--audit-interval=sixty"}, `"--audit-interval"`},
		{[]string{"--metrics-backend=stackdriver"}, `Prometheus metrics only`},
		{[]string{"--metrics-backend=opentelemetry"}, `Prometheus metrics only`},
		{[]string{"--metrics-backend=statsd"}, `"--metrics-backend"`},
		{[]string{"--log-level=TRACE"}, `"--log-level"`},
		{[]string{"--shutdown-delay=-1"}, `"--shutdown-delay"`},
		{[]string{"--prometheus-port=0"}, `--prometheus-port 0`},
		{[]string{"--prometheus-port=70000"}, `--prometheus-port 70000`},
		{[]string{"--health-addr=:9090", "--health-probe-bind-address=:8081"}, `--health-addr and --health-probe-bind-address`},
		{[]string{"--prometheus-port=8888", "--metrics-bind-address=:8080"}, `--prometheus-port and --metrics-bind-address`},
		{[]string{"--cert-service-name=a", "--webhook-service-name=b"}, `--cert-service-name and --webhook-service-name`},
		{[]string{"--operation=audit", "--enable-webhook=true"}, `--enable-webhook=true contradicts --operation`},
		{[]string{"--operation=webhook", "--enable-webhook=false"}, `--enable-webhook=false contradicts --operation`},
		{[]string{"--operation=webhook", "--enable-mutation-webhook=true"}, `--enable-mutation-webhook=true contradicts --operation`},
		{[]string{"--operation=mutation-webhook", "--enable-mutation-webhook=false"}, `--enable-mutation-webhook=false contradicts --operation`},
		{[]string{"--disable-opa-builtin={}"}, `--disable-opa-builtin`},
		{[]string{"--readiness-retries=-2"}, `--readiness-retries -2`},
		{[]string{"--external-data-provider-response-cache-ttl=-1s"}, `--external-data-provider-response-cache-ttl`},
		{[]string{"--enable-pprof", "--pprof-port=0"}, `--pprof-port 0`},
		{[]string{"--log-level-encoder=upper"}, `--log-level-encoder "upper"`},
		{[]string{"--log-level-key="}, `--log-level-key must not be empty`},
		{[]string{"--default-wait-for-vapb-generation=-1"}, `"--default-wait-for-vapb-generation"`},
		{[]string{"--default-wait-for-vapb-generation=soon"}, `"--default-wait-for-vapb-generation"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parse(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %s", err, tc.want)
			}
		})
	}
}

// TestGatekeeperMarks checks that every Gatekeeper flag is marked in
// --help, and no other.
func TestGatekeeperMarks(t *testing.T) {
	o := NewOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	names := append([]string{}, gatekeeperNames...)
	for _, f := range unsupported {
		names = append(names, f.name)
	}
	fs.VisitAll(func(f *pflag.Flag) {
		marked := strings.HasPrefix(f.Usage, GatekeeperMark)
		if want := slices.Contains(names, f.Name); marked != want {
			t.Errorf("--%s: marked %t, want %t", f.Name, marked, want)
		}
	})
	for _, n := range names {
		if fs.Lookup(n) == nil {
			t.Errorf("--%s is not defined", n)
		}
	}
}

// TestPodNamespace checks that $POD_NAMESPACE, which Gatekeeper's chart
// sets, is the namespace unless --namespace is given.
func TestPodNamespace(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "gatekeeper-system")
	if o := mustParse(t); o.Namespace != "gatekeeper-system" || o.LeaderElectionNamespace != "gatekeeper-system" {
		t.Errorf("namespace %q, leader election namespace %q, want gatekeeper-system", o.Namespace, o.LeaderElectionNamespace)
	}
	if o := mustParse(t, "--namespace=other"); o.Namespace != "other" {
		t.Errorf("namespace %q, want other", o.Namespace)
	}
}

// TestDelayedCancel checks --shutdown-delay's context: it outlives its
// parent by the delay, and ends with it when there is none.
func TestDelayedCancel(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	ctx, cancel := delayedCancel(parent, 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	cancelParent()
	select {
	case <-ctx.Done():
		t.Fatal("ended with its parent")
	case <-time.After(100 * time.Millisecond):
	}
	<-ctx.Done()
	if d := time.Since(begin); d < 300*time.Millisecond {
		t.Errorf("ended %s after its parent, want 300ms", d)
	}

	parent, cancelParent = context.WithCancel(context.Background())
	ctx, cancel = delayedCancel(parent, 0)
	defer cancel()
	cancelParent()
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Error("without a delay, did not end with its parent")
	}
}

// TestPprof checks that --enable-pprof serves the profiles on localhost.
func TestPprof(t *testing.T) {
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- newPprofServer(port).Start(ctx) }()
	url := fmt.Sprintf("http://localhost:%d/debug/pprof/cmdline", port)
	var resp *http.Response
	for range 50 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s", url, resp.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Start: %v", err)
	}
}

// testLevelEncoder records what a zapcore.LevelEncoder writes.
type testLevelEncoder struct {
	zapcore.PrimitiveArrayEncoder
	s string
}

func (e *testLevelEncoder) AppendString(s string) { e.s = s }
