package dev

import (
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/webhook"
)

func TestManagerOptions(t *testing.T) {
	opts, err := ManagerOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case opts.PodID != PodID:
		t.Errorf("PodID %q", opts.PodID)
	case opts.Audit.Interval != 30*time.Second:
		t.Errorf("audit interval %s, want 30s", opts.Audit.Interval)
	case !opts.Webhook.EnableConnectOperations || !opts.Webhook.EnableDeleteOperations:
		t.Error("CONNECT and DELETE are not judged by default")
	case opts.Webhook.URLHost != "127.0.0.1" || opts.Webhook.Port == webhook.DefaultPort:
		t.Errorf("webhook on %s:%d, want a free port on 127.0.0.1", opts.Webhook.URLHost, opts.Webhook.Port)
	case !strings.HasPrefix(opts.MetricsBindAddress, "127.0.0.1:") || !strings.HasPrefix(opts.HealthProbeBindAddress, "127.0.0.1:"):
		t.Errorf("metrics %s, probes %s: want free loopback ports", opts.MetricsBindAddress, opts.HealthProbeBindAddress)
	}
	if got := judged(opts); got != "the webhook judges CREATE, UPDATE, DELETE and CONNECT" {
		t.Errorf("judged = %q", got)
	}

	opts, err = ManagerOptions([]string{"--enable-connect-operations=false", "--audit-interval=10", "--port=9443", "--prometheus-port=9999"})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Webhook.EnableConnectOperations || opts.Audit.Interval != 10*time.Second || opts.Webhook.Port != 9443 || opts.MetricsBindAddress != ":9999" {
		t.Errorf("flags not applied: connect %t, audit %s, port %d, metrics %s", opts.Webhook.EnableConnectOperations, opts.Audit.Interval, opts.Webhook.Port, opts.MetricsBindAddress)
	}
	if got := judged(opts); got != "the webhook judges CREATE, UPDATE and DELETE" {
		t.Errorf("judged = %q", got)
	}
	opts, err = ManagerOptions([]string{"--operation=audit"})
	if err != nil {
		t.Fatal(err)
	}
	if got := judged(opts); got != "no webhook (audit only)" {
		t.Errorf("judged = %q", got)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--kubeconfig=/x"}, "--kubeconfig cannot be given to portcullis dev"},
		{[]string{"--webhook-url-host=example.com"}, "--webhook-url-host cannot be given"},
		{[]string{"--nope"}, "unknown flag: --nope"},
		{[]string{"stray"}, `unexpected argument "stray"`},
		{[]string{"--health-probe-bind-address=0"}, "portcullis dev waits for the manager's /readyz"},
		{[]string{"--audit-interval=-1"}, "--audit-interval"},
	} {
		if _, err := ManagerOptions(c.args); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "manager flags after --") {
			t.Errorf("ManagerOptions(%v) = %v, want an error about the flags after -- saying %q", c.args, err, c.want)
		}
	}
}

func TestFailedChecks(t *testing.T) {
	body := "[+]ping ok\n[-]policies-loaded failed: reason withheld\n[-]webhook failed: not started\nreadyz check failed\n"
	if got := failedChecks(body); got != "policies-loaded failed: reason withheld; webhook failed: not started" {
		t.Errorf("failedChecks = %q", got)
	}
	if got := failedChecks("  nothing verbose \n"); got != "nothing verbose" {
		t.Errorf("failedChecks = %q", got)
	}
}

func TestProbeNamespace(t *testing.T) {
	o := webhook.NewOptions()
	if got := probeNamespace(o, "portcullis-system"); got != "portcullis-dev-webhook-probe" {
		t.Errorf("probe namespace %q", got)
	}
	o.ExemptNamespacePrefixes = []string{"portcullis-"}
	got := probeNamespace(o, "portcullis-system")
	if webhook.NewExemptions(nil, o.ExemptNamespacePrefixes, nil).Exempt(got) {
		t.Errorf("probe namespace %q is exempt: the label webhook would admit it", got)
	}
}

func TestJoinAnd(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "a", "a,b": "a and b", "a,b,c": "a, b and c"} {
		var parts []string
		if in != "" {
			parts = strings.Split(in, ",")
		}
		if got := joinAnd(parts); got != want {
			t.Errorf("joinAnd(%q) = %q, want %q", in, got, want)
		}
	}
	if got := listProcs(nil); got != "nothing" {
		t.Errorf("listProcs(nil) = %q", got)
	}
}
