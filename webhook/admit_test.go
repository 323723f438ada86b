package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/webhook"
)

func authUser(name string) authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: name}
}

const saUser = "system:serviceaccount:portcullis-system:portcullis-controller-manager"

// countingReviewer counts the reviews that reach the engine.
type countingReviewer struct {
	webhook.Reviewer
	n atomic.Int32
}

func (c *countingReviewer) Review(ctx context.Context, in engine.ReviewInput, ep string) (*engine.Response, error) {
	c.n.Add(1)
	return c.Reviewer.Review(ctx, in, ep)
}

func TestAdmit(t *testing.T) {
	eng := newEngine(t,
		tagTemplate, ownerTemplate, noExecTemplate,
		constraint("K8sNoLatest", "no-latest", "  parameters:\n    tag: latest\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"),
		constraint("K8sNoLatest", "no-dev", "  enforcementAction: warn\n  parameters:\n    tag: dev\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"),
		constraint("K8sNoLatest", "no-canary", "  enforcementAction: dryrun\n  parameters:\n    tag: canary\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"),
		constraint("K8sNoLatest", "no-beta-scoped", "  enforcementAction: scoped\n  scopedEnforcementActions:\n  - action: deny\n    enforcementPoints: [{name: validation.gatekeeper.sh}]\n  - action: warn\n    enforcementPoints: [{name: audit.gatekeeper.sh}]\n  parameters:\n    tag: beta\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"),
		constraint("K8sNoLatest", "no-rc-audit-only", "  enforcementAction: scoped\n  scopedEnforcementActions:\n  - action: deny\n    enforcementPoints: [{name: audit.gatekeeper.sh}]\n  parameters:\n    tag: rc\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"),
		constraint("K8sOwner", "pods-need-owner", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n    namespaceSelector:\n      matchLabels: {team: payments}\n"),
		constraint("K8sNoExec", "no-exec", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [PodExecOptions, PodAttachOptions]}]\n    namespaces: [prod]\n"),
	)
	owner := map[string]string{"owner": "me"}
	execOptions := []byte(`{"kind":"PodExecOptions","apiVersion":"v1","stdout":true,"container":"c","command":["ls"]}`)
	connect := func(sub string) *admissionv1.AdmissionRequest {
		r := request(admissionv1.Connect, "PodExecOptions", "prod", "shell", execOptions, nil)
		r.SubResource = sub
		return r
	}
	tests := []struct {
		name        string
		req         *admissionv1.AdmissionRequest
		wantAllowed bool
		wantCode    int32
		wantMessage string
		wantWarn    []string
		wantLog     []string
		wantJudged  bool
	}{
		{
			name:        "clean pod",
			req:         request(admissionv1.Create, "Pod", "default", "ok", podJSON("ok", "default", owner, "nginx:1.27"), nil),
			wantAllowed: true, wantCode: 200, wantJudged: true,
		},
		{
			name:        "deny: one line per violation",
			req:         request(admissionv1.Create, "Pod", "default", "bad", podJSON("bad", "default", owner, "nginx:latest", "redis:latest"), nil),
			wantCode:    403,
			wantMessage: "[no-latest] container c0 uses latest\n[no-latest] container c1 uses latest",
			wantJudged:  true,
		},
		{
			name:        "warn: allowed with the warning",
			req:         request(admissionv1.Create, "Pod", "default", "dev", podJSON("dev", "default", owner, "nginx:dev"), nil),
			wantAllowed: true, wantCode: 299, wantWarn: []string{"[no-dev] container c0 uses dev"}, wantJudged: true,
		},
		{
			name:     "deny and warn together",
			req:      request(admissionv1.Create, "Pod", "default", "both", podJSON("both", "default", owner, "nginx:latest", "app:dev"), nil),
			wantCode: 403, wantMessage: "[no-latest] container c0 uses latest", wantWarn: []string{"[no-dev] container c1 uses dev"}, wantJudged: true,
		},
		{
			name:        "dryrun: allowed, logged, nothing shown",
			req:         request(admissionv1.Create, "Pod", "default", "canary", podJSON("canary", "default", owner, "nginx:canary"), nil),
			wantAllowed: true, wantCode: 200, wantLog: []string{"Dryrun violation: container c0 uses canary", `"constraint_name"="no-canary"`, `"event_type"="violation"`}, wantJudged: true,
		},
		{
			name:     "scoped: deny at validation.gatekeeper.sh",
			req:      request(admissionv1.Create, "Pod", "default", "beta", podJSON("beta", "default", owner, "nginx:beta"), nil),
			wantCode: 403, wantMessage: "[no-beta-scoped] container c0 uses beta", wantJudged: true,
		},
		{
			name:        "scoped: audit only is not enforced here",
			req:         request(admissionv1.Create, "Pod", "default", "rc", podJSON("rc", "default", owner, "nginx:rc"), nil),
			wantAllowed: true, wantCode: 200, wantJudged: true,
		},
		{
			name:     "namespaceSelector sees the looked-up Namespace",
			req:      request(admissionv1.Create, "Pod", "payments", "orphan", podJSON("orphan", "payments", nil, "nginx:1"), nil),
			wantCode: 403, wantMessage: "[pods-need-owner] Pod orphan has no owner", wantJudged: true,
		},
		{
			name:     "DELETE is judged on oldObject",
			req:      request(admissionv1.Delete, "Pod", "default", "old", nil, podJSON("old", "default", owner, "nginx:latest")),
			wantCode: 403, wantMessage: "[no-latest] container c0 uses latest", wantJudged: true,
		},
		{
			name:     "CONNECT pods/exec",
			req:      connect("exec"),
			wantCode: 403, wantMessage: "[no-exec] exec into shell is not allowed", wantJudged: true,
		},
		{
			name:     "CONNECT pods/attach",
			req:      connect("attach"),
			wantCode: 403, wantMessage: "[no-exec] attach into shell is not allowed", wantJudged: true,
		},
		{
			name: "the manager's service account is never judged",
			req: func() *admissionv1.AdmissionRequest {
				r := request(admissionv1.Create, "Pod", "default", "sa", podJSON("sa", "default", nil, "nginx:latest"), nil)
				r.UserInfo = authUser(saUser)
				return r
			}(),
			wantAllowed: true, wantCode: 200, wantMessage: "Gatekeeper does not self-manage",
		},
		{
			name:        "the manager's own namespace is never judged",
			req:         request(admissionv1.Create, "Pod", "portcullis-system", "sys", podJSON("sys", "portcullis-system", owner, "nginx:latest"), nil),
			wantAllowed: true, wantCode: 200, wantMessage: `namespace "portcullis-system" is the manager's own`,
		},
		{
			// As in Gatekeeper: --exempt-namespace only allows the ignore
			// label; the namespace is skipped by the configuration's
			// namespaceSelector once it carries it, not by the handler.
			name:        "a namespace --exempt-namespace names is judged",
			req:         request(admissionv1.Create, "Pod", "kube-system", "sys", podJSON("sys", "kube-system", owner, "nginx:latest"), nil),
			wantCode:    403,
			wantMessage: "[no-latest] container c0 uses latest",
			wantJudged:  true,
		},
		{
			name:        "a namespace the Config excludes is never judged",
			req:         request(admissionv1.Create, "Pod", "excluded-by-config", "x", podJSON("x", "excluded-by-config", nil, "nginx:latest"), nil),
			wantAllowed: true, wantCode: 200, wantMessage: "Namespace is set to be ignored by Gatekeeper config",
		},
		{
			name:        "the manager's own Namespace object is never judged",
			req:         request(admissionv1.Update, "Namespace", "", "portcullis-system", []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"portcullis-system"}}`), nil),
			wantAllowed: true, wantCode: 200,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rv := &countingReviewer{Reviewer: eng}
			logs := &logSink{}
			var looked []string
			h := webhook.NewAdmissionHandler(rv, webhook.HandlerOptions{
				Namespaces: func(_ context.Context, name string) (*corev1.Namespace, error) {
					looked = append(looked, name)
					labels := map[string]string{}
					if name == "payments" {
						labels["team"] = "payments"
					}
					return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, nil
				},
				Namespace:      "portcullis-system",
				Excluded:       func(ns string) bool { return ns == "excluded-by-config" },
				ServiceAccount: saUser,
				Log:            logs.logger(),
			})
			code, resp, body := serve(t, h, reviewBody(t, tc.req))
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, body)
			}
			if resp.UID != tc.req.UID {
				t.Errorf("uid %q, want %q", resp.UID, tc.req.UID)
			}
			if resp.Allowed != tc.wantAllowed || resp.Result == nil || resp.Result.Code != tc.wantCode {
				t.Errorf("allowed %v result %+v, want allowed %v code %d", resp.Allowed, resp.Result, tc.wantAllowed, tc.wantCode)
			}
			if !tc.wantAllowed && (resp.Result.Message != tc.wantMessage || resp.Result.Reason != metav1.StatusReasonForbidden) {
				t.Errorf("message %q reason %q, want %q Forbidden", resp.Result.Message, resp.Result.Reason, tc.wantMessage)
			}
			if tc.wantAllowed && tc.wantMessage != "" && resp.Result.Message != tc.wantMessage {
				t.Errorf("allowed with message %q, want Gatekeeper's %q", resp.Result.Message, tc.wantMessage)
			}
			if strings.Join(resp.Warnings, "|") != strings.Join(tc.wantWarn, "|") {
				t.Errorf("warnings %q, want %q", resp.Warnings, tc.wantWarn)
			}
			if len(tc.wantLog) > 0 && !logs.contains(tc.wantLog...) {
				t.Errorf("no log line with %q in %q", tc.wantLog, logs.lines)
			}
			if judged := rv.n.Load() > 0; judged != tc.wantJudged {
				t.Errorf("judged %v, want %v", judged, tc.wantJudged)
			}
			if tc.req.Kind.Kind == "Namespace" && len(looked) > 0 {
				t.Errorf("looked up %q for a Namespace object", looked)
			}
			if tc.wantJudged && tc.req.Namespace != "" && (len(looked) != 1 || looked[0] != tc.req.Namespace) {
				t.Errorf("looked up %q, want [%s]", looked, tc.req.Namespace)
			}
		})
	}
}

// TestAdmitLogDenies: with --log-denies every violation is logged as
// Gatekeeper logs it, "denied admission: <message>" with its structured keys,
// whatever the action; the scoped actions go under
// constraint_enforcement_actions.
func TestAdmitLogDenies(t *testing.T) {
	eng := newEngine(t, tagTemplate,
		constraint("K8sNoLatest", "no-latest", "  parameters:\n    tag: latest\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"),
		constraint("K8sNoLatest", "no-dev", "  enforcementAction: warn\n  parameters:\n    tag: dev\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"),
		constraint("K8sNoLatest", "no-beta-scoped", "  enforcementAction: scoped\n  scopedEnforcementActions:\n  - action: deny\n    enforcementPoints: [{name: validation.gatekeeper.sh}]\n  parameters:\n    tag: beta\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n"),
	)
	for _, logDenies := range []bool{true, false} {
		logs := &logSink{}
		h := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{LogDenies: logDenies, Log: logs.logger()})
		req := request(admissionv1.Create, "Pod", "default", "", podJSON("web-7f9c", "default", nil, "nginx:latest", "app:dev", "side:beta"), nil)
		req.UserInfo = authUser("alice")
		if code, resp, body := serve(t, h, reviewBody(t, req)); code != http.StatusOK || resp.Allowed {
			t.Fatalf("HTTP %d, allowed %v: %s", code, resp.Allowed, body)
		}
		common := []string{`"process"="admission"`, `"event_type"="violation"`, `"semantic"=true`,
			`"constraint_group"="constraints.gatekeeper.sh"`, `"constraint_api_version"="v1beta1"`, `"constraint_kind"="K8sNoLatest"`,
			`"resource_group"=""`, `"resource_api_version"="v1"`, `"resource_kind"="Pod"`, `"resource_namespace"="default"`,
			`"resource_name"="web-7f9c"`, `"request_username"="alice"`}
		for _, want := range [][]string{
			{`"denied admission: container c0 uses latest"`, `"constraint_name"="no-latest"`, `"constraint_action"="deny"`, `"constraint_enforcement_actions"=[]`},
			{`"denied admission: container c1 uses dev"`, `"constraint_name"="no-dev"`, `"constraint_action"="warn"`},
			{`"denied admission: container c2 uses beta"`, `"constraint_name"="no-beta-scoped"`, `"constraint_action"="scoped"`, `"constraint_enforcement_actions"=["deny"]`},
		} {
			if got := logs.contains(append(want, common...)...); got != logDenies {
				t.Errorf("--log-denies=%t: a line with %q logged: %t, in %q", logDenies, want, got, logs.lines)
			}
		}
	}
}

// TestAdmitErrors: an engine error, a failed Namespace lookup and a stuck
// policy answer HTTP 500 with the reason, which the API server treats as a
// webhook failure (failurePolicy Ignore lets the request through); they
// are counted as errors. An evaluation error in one template is that
// constraint's violation, as in Gatekeeper.
func TestAdmitErrors(t *testing.T) {
	eng := newEngine(t, conflictTemplate, badMsgTemplate, stuckTemplate,
		constraint("K8sConflict", "conflict", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Service]}]\n"),
		constraint("K8sBadMsg", "bad-msg", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [ConfigMap]}]\n"),
		constraint("K8sStuck", "stuck", "  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Secret]}]\n"),
	)
	reg := prometheus.NewRegistry()
	metrics, err := webhook.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{
		Namespaces: func(_ context.Context, name string) (*corev1.Namespace, error) {
			if name == "unreachable" {
				return nil, errors.New("the API server is unreachable")
			}
			return nil, nil
		},
		Timeout: 500 * time.Millisecond,
		Metrics: metrics,
	})
	object := func(kind, ns string) *admissionv1.AdmissionRequest {
		return request(admissionv1.Create, kind, ns, "x", []byte(`{"apiVersion":"v1","kind":"`+kind+`","metadata":{"name":"x"}}`), nil)
	}
	tests := []struct {
		name string
		req  *admissionv1.AdmissionRequest
		want string
	}{
		{"engine error", object("ConfigMap", "default"), "reviewing"},
		{"stuck policy stops at the timeout", object("Secret", "default"), "review did not finish within 450ms"},
		{"namespace lookup fails", object("Pod", "unreachable"), "the API server is unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := serve(t, h, reviewBody(t, tc.req))
			if code != http.StatusInternalServerError || !strings.Contains(body, tc.want) || !strings.Contains(body, `"kind":"Status"`) {
				t.Errorf("HTTP %d %s, want 500 with %q", code, body, tc.want)
			}
		})
	}
	if got := counter(t, reg, "error"); got != float64(len(tests)) {
		t.Errorf("error count %v, want %d", got, len(tests))
	}
	t.Run("evaluation error is the constraint's violation", func(t *testing.T) {
		code, resp, body := serve(t, h, reviewBody(t, object("Service", "default")))
		if code != http.StatusOK || resp.Allowed || !strings.Contains(resp.Result.Message, "[conflict] ") ||
			!strings.Contains(resp.Result.Message, "eval_conflict_error") {
			t.Errorf("HTTP %d %s, want a refusal naming the evaluation error", code, body)
		}
	})
}

// TestAdmitConcurrently: reviews run at the same time. The reviewer lets
// no review finish until two are in flight, which a handler judging one
// request at a time would never reach.
func TestAdmitConcurrently(t *testing.T) {
	b := &barrierReviewer{want: 2, all: make(chan struct{})}
	h := webhook.NewAdmissionHandler(b, webhook.HandlerOptions{MaxServingThreads: 2, Timeout: time.Minute})
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Go(func() {
			req := request(admissionv1.Create, "Pod", "default", "p", podJSON("p", "default", nil, "nginx"), nil)
			codes[i], _, _ = serve(t, h, reviewBody(t, req))
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("request %d: HTTP %d (the reviews did not overlap)", i, c)
		}
	}
}

type barrierReviewer struct {
	want int32
	n    atomic.Int32
	all  chan struct{}
}

func (b *barrierReviewer) Review(ctx context.Context, _ engine.ReviewInput, _ string) (*engine.Response, error) {
	if b.n.Add(1) == b.want {
		close(b.all)
	}
	select {
	case <-b.all:
		return &engine.Response{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestMetrics(t *testing.T) {
	eng := newEngine(t, tagTemplate,
		constraint("K8sNoLatest", "no-latest", "  parameters:\n    tag: latest\n"),
		constraint("K8sNoLatest", "no-dev", "  enforcementAction: warn\n  parameters:\n    tag: dev\n"))
	reg := prometheus.NewRegistry()
	metrics, err := webhook.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// Registering again shares the collectors, as managers in one process do.
	if _, err := webhook.NewMetrics(reg); err != nil {
		t.Fatalf("registering twice: %v", err)
	}
	h := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{Metrics: metrics})
	for _, img := range []string{"a:1", "b:1", "c:latest", "d:dev"} {
		serve(t, h, reviewBody(t, request(admissionv1.Create, "Pod", "default", "p", podJSON("p", "default", nil, img), nil)))
	}
	serve(t, h, []byte("not json"))
	for status, want := range map[string]float64{"allow": 2, "deny": 1, "warn": 1, "error": 1} {
		if got := counter(t, reg, status); got != want {
			t.Errorf("%s: %v, want %v", status, got, want)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "gatekeeper_validation_request_duration_seconds" {
			continue
		}
		// Gatekeeper's buckets: 1 ms to 10 s, 46 of them.
		b := f.GetMetric()[0].GetHistogram().GetBucket()
		if first, last := b[0].GetUpperBound(), b[len(b)-1].GetUpperBound(); first != 0.001 || last != 10 || len(b) != 46 {
			t.Errorf("buckets %v to %v, %d of them; want Gatekeeper's 0.001 to 10, 46", first, last, len(b))
		}
		return
	}
	t.Error("no duration histogram")
}

// counter sums gatekeeper_validation_request_count for one status.
func counter(t *testing.T, g prometheus.Gatherer, status string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != "gatekeeper_validation_request_count" {
			continue
		}
		for _, m := range f.GetMetric() {
			if label(m, "admission_status") == status {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestAdmitNotReady: until the engine holds every policy, requests are
// answered 503 (a webhook failure: failurePolicy decides), except those
// that are never judged.
func TestAdmitNotReady(t *testing.T) {
	eng := newEngine(t, tagTemplate, constraint("K8sNoLatest", "no-latest", "  parameters:\n    tag: latest\n"))
	var notReady atomic.Bool
	notReady.Store(true)
	h := webhook.NewAdmissionHandler(eng, webhook.HandlerOptions{
		ServiceAccount: saUser,
		Ready: func() error {
			if notReady.Load() {
				return errors.New("2 ConstraintTemplates not loaded")
			}
			return nil
		},
	})
	req := request(admissionv1.Create, "Pod", "default", "p", podJSON("p", "default", nil, "nginx:latest"), nil)
	code, _, body := serve(t, h, reviewBody(t, req))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: 2 ConstraintTemplates not loaded") {
		t.Errorf("HTTP %d %s, want 503 not ready", code, body)
	}
	sa := request(admissionv1.Create, "Pod", "default", "p", podJSON("p", "default", nil, "nginx:latest"), nil)
	sa.UserInfo = authUser(saUser)
	if code, resp, body := serve(t, h, reviewBody(t, sa)); code != http.StatusOK || !resp.Allowed {
		t.Errorf("the manager's own request: HTTP %d %s", code, body)
	}
	notReady.Store(false)
	if code, resp, body := serve(t, h, reviewBody(t, req)); code != http.StatusOK || resp.Allowed {
		t.Errorf("once ready: HTTP %d %s, want the refusal", code, body)
	}
}
