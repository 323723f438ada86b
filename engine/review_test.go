package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Tests of what reaches Rego (input.review, input.parameters,
// data.inventory, libs), of the Rego dialects and builtins allowed, and of
// how evaluation results and errors come back.

// echoRego reports, one message per field, what reaches input.review and
// input.parameters; a field that is undefined yields no message.
const echoRego = `package echo

violation[{"msg": msg}] { msg := sprintf("operation=%v", [input.review.operation]) }
violation[{"msg": msg}] { msg := sprintf("uid=%v", [input.review.uid]) }
violation[{"msg": msg}] { msg := sprintf("username=%v", [input.review.userInfo.username]) }
violation[{"msg": msg}] { k := input.review.kind; msg := sprintf("kind=%v/%v/%v", [k.group, k.version, k.kind]) }
violation[{"msg": msg}] { msg := sprintf("name=%v", [input.review.name]) }
violation[{"msg": msg}] { msg := sprintf("namespace=%v", [input.review.namespace]) }
violation[{"msg": msg}] { msg := sprintf("namespaceObject=%v", [input.review.namespaceObject.metadata.name]) }
violation[{"msg": msg}] { msg := sprintf("namespaceObject.env=%v", [input.review.namespaceObject.metadata.labels.env]) }
violation[{"msg": msg}] { msg := sprintf("object.v=%v", [input.review.object.metadata.labels.v]) }
violation[{"msg": msg}] { msg := sprintf("oldObject.v=%v", [input.review.oldObject.metadata.labels.v]) }
violation[{"msg": msg}] { msg := sprintf("dryRun=%v", [input.review.dryRun]) }
violation[{"msg": msg}] { msg := sprintf("param=%v", [input.parameters.greeting]) }
`

const echoKind = "K8sEcho"

const echoSchema = `
type: object
properties:
  greeting:
    type: string
`

func TestReviewInput(t *testing.T) {
	ct := newTemplate(t, echoKind, echoRego, withSchema(t, echoSchema))
	v := func(s string) map[string]string { return map[string]string{"v": s} }
	prodNS := namespace("shop", map[string]string{"env": "prod"})
	dryRun := true

	update := request(t, admissionv1.Update, pod("shop", "p", v("new")), pod("shop", "p", v("old")))
	update.UserInfo = authenticationv1.UserInfo{Username: "alice"}
	update.DryRun = &dryRun

	del := request(t, admissionv1.Delete, nil, pod("shop", "p", v("old")))
	del.UserInfo = authenticationv1.UserInfo{Username: "bob"}

	// A hand-written request, as in a suite, with only operation and object.
	bare := &admissionv1.AdmissionRequest{Operation: admissionv1.Create, Object: rawOf(t, deployment("shop", "d", v("new")))}

	tests := []struct {
		name   string
		params string
		in     ReviewInput
		ep     string
		want   []string
	}{
		{
			name:   "webhook UPDATE",
			params: "{greeting: hello}",
			in:     &Admission{Request: update, Namespace: prodNS},
			ep:     EnforcementPointWebhook,
			want: []string{
				"dryRun=true", "kind=/v1/Pod", "name=p", "namespace=shop", "namespaceObject.env=prod", "namespaceObject=shop",
				"object.v=new", "oldObject.v=old", "operation=UPDATE", "param=hello", "uid=0000-1111", "username=alice",
			},
		},
		{
			name: "webhook DELETE: oldObject becomes object",
			in:   &Admission{Request: del},
			ep:   EnforcementPointWebhook,
			want: []string{
				"kind=/v1/Pod", "name=p", "namespace=shop", "object.v=old", "oldObject.v=old", "operation=DELETE",
				"uid=0000-1111", "username=bob",
			},
		},
		{
			name: "hand-written request: kind, name and namespace come from the object",
			in:   &Admission{Request: bare},
			ep:   EnforcementPointWebhook,
			want: []string{"kind=apps/v1/Deployment", "name=d", "namespace=shop", "object.v=new", "operation=CREATE"},
		},
		{
			name:   "audit object",
			params: "{greeting: hi}",
			in:     &Object{Object: pod("shop", "p", v("cur")), Namespace: prodNS},
			ep:     EnforcementPointAudit,
			want: []string{
				"kind=/v1/Pod", "name=p", "namespace=shop", "namespaceObject.env=prod", "namespaceObject=shop",
				"object.v=cur", "param=hi",
			},
		},
		{
			name: "audit Namespace object has no namespace",
			in:   &Object{Object: namespaceU("shop", v("cur"))},
			ep:   EnforcementPointAudit,
			want: []string{"kind=/v1/Namespace", "name=shop", "object.v=cur"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Options{}, ct)
			spec := ""
			if tc.params != "" {
				spec = "parameters: " + tc.params
			}
			mustAddConstraint(t, e, newConstraint(t, echoKind, "echo", spec))
			got := messages(mustReview(t, e, tc.in, tc.ep))
			// Audit and hand-written reviews carry an empty operation and
			// uid; only non-empty values are asserted on.
			got = dropString(got, "operation=", "uid=")
			if want := sortedCopy(tc.want); !equalStrings(got, want) {
				t.Errorf("input.review messages:\n got  %q\n want %q", got, want)
			}
		})
	}
}

func dropString(s []string, drop ...string) []string {
	out := s[:0:0]
	for _, x := range s {
		if !contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

func TestReviewErrors(t *testing.T) {
	e := newEngine(t, Options{}, newTemplate(t, alwaysKind, alwaysViolateRego))
	mustAddConstraint(t, e, newConstraint(t, alwaysKind, "c", ""))
	ctx := context.Background()
	tests := []struct {
		name string
		in   ReviewInput
		want error
	}{
		{"DELETE without oldObject", &Admission{Request: &admissionv1.AdmissionRequest{Operation: admissionv1.Delete,
			Object: rawOf(t, pod("default", "p", nil))}}, ErrOldObjectIsNil},
		{"request without objects", &Admission{Request: &admissionv1.AdmissionRequest{Operation: admissionv1.Create}}, ErrNoObject},
		{"nil request", &Admission{}, ErrNoObject},
		{"nil object", &Object{}, ErrNoObject},
		{"nil *Admission", (*Admission)(nil), ErrNoObject},
		{"nil *Object", (*Object)(nil), ErrNoObject},
		{"no input", nil, ErrReviewType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Review(ctx, tc.in, EnforcementPointWebhook)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Review error = %v, want %v", err, tc.want)
			}
		})
	}
}

const inventoryRego = `package inv

violation[{"msg": msg}] {
  o := data.inventory.cluster[gv][kind][name]
  msg := sprintf("cluster/%v/%v/%v=%v", [gv, kind, name, o.metadata.name])
}

violation[{"msg": msg}] {
  o := data.inventory.namespace[ns][gv][kind][name]
  msg := sprintf("namespace/%v/%v/%v/%v=%v", [ns, gv, kind, name, o.metadata.name])
}
`

func TestInventory(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Options{}, newTemplate(t, "K8sInventory", inventoryRego))
	mustAddConstraint(t, e, newConstraint(t, "K8sInventory", "inv", ""))
	review := func() []string {
		t.Helper()
		return messages(mustReview(t, e, objIn(pod("default", "p", nil)), EnforcementPointAudit))
	}
	if got := review(); len(got) != 0 {
		t.Fatalf("empty inventory: got %q", got)
	}
	dep := deployment("shop", "web", nil)
	for _, u := range []*unstructured.Unstructured{namespaceU("shop", nil), dep, clusterRole("admin")} {
		mustAddData(t, e, u)
	}
	want := []string{
		"cluster/rbac.authorization.k8s.io/v1/ClusterRole/admin=admin",
		"cluster/v1/Namespace/shop=shop",
		"namespace/shop/apps/v1/Deployment/web=web",
	}
	if got := review(); !equalStrings(got, want) {
		t.Fatalf("after AddData:\n got  %q\n want %q", got, want)
	}
	if err := e.RemoveData(ctx, dep); err != nil {
		t.Fatal(err)
	}
	if got := review(); !equalStrings(got, want[:2]) {
		t.Fatalf("after RemoveData:\n got  %q\n want %q", got, want[:2])
	}
	if err := e.WipeData(ctx); err != nil {
		t.Fatal(err)
	}
	if got := review(); len(got) != 0 {
		t.Fatalf("after WipeData: got %q", got)
	}

	// Objects without apiVersion, kind or name have no inventory path.
	// (The frameworks client returns the target's error inside an
	// *ErrorMap, which does not unwrap, so the message is checked.)
	for _, bad := range []struct {
		u    *unstructured.Unstructured
		want string
	}{
		{newObj("", "Pod", "default", "p", nil), "no apiVersion or kind"},
		{newObj("v1", "", "default", "p", nil), "no apiVersion or kind"},
		{newObj("v1", "Pod", "default", "", nil), "no metadata.name"},
	} {
		err := e.AddData(ctx, bad.u)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("AddData(%v) error = %v, want one containing %q", bad.u.Object, err, bad.want)
		}
	}
}

func TestDisableReferential(t *testing.T) {
	e := newEngine(t, Options{DisableReferential: true})
	err := e.AddTemplate(context.Background(), newTemplate(t, "K8sInventory", inventoryRego))
	if err == nil {
		t.Fatal("AddTemplate accepted data.inventory with DisableReferential")
	}
	if !strings.Contains(err.Error(), "inventory") {
		t.Errorf("error %q does not mention inventory", err)
	}
}

func TestRegoV1AndLibs(t *testing.T) {
	const v1Rego = "package x\n\nviolation contains {\"msg\": msg} if {\n  some c in input.review.object.spec.containers\n  msg := sprintf(\"container %s\", [c.name])\n}\n"
	const useLib = "package x\n\nimport data.lib.helpers\n\nviolation[{\"msg\": helpers.msg}] { true }\n"
	const lib = "package lib.helpers\n\nmsg := \"from lib\"\n"
	const useLibV1 = "package x\n\nimport data.lib.helpers\n\nviolation contains {\"msg\": helpers.greet(\"v1\")} if { true }\n"
	const libV1 = "package lib.helpers\n\ngreet(who) := sprintf(\"hello %s\", [who])\n"

	p := pod("default", "p", nil)
	p.Object["spec"] = obj{"containers": []any{obj{"name": "a"}, obj{"name": "b"}}}

	tests := []struct {
		name    string
		opts    []tmplOpt
		want    []string
		wantErr string
	}{
		{
			name: "v1 source",
			opts: []tmplOpt{withCode(obj{"engine": "Rego", "source": obj{"version": "v1", "rego": v1Rego}})},
			want: []string{"container a", "container b"},
		},
		{
			name:    "v1 syntax without version is v0 and fails",
			opts:    []tmplOpt{withCode(obj{"engine": "Rego", "source": obj{"rego": v1Rego}})},
			wantErr: "line",
		},
		{
			name: "code libs",
			opts: []tmplOpt{withCode(obj{"engine": "Rego", "source": obj{"rego": useLib, "libs": []any{lib}}})},
			want: []string{"from lib"},
		},
		{
			name: "v1 code libs",
			opts: []tmplOpt{withCode(obj{"engine": "Rego", "source": obj{"version": "v1", "rego": useLibV1, "libs": []any{libV1}}})},
			want: []string{"hello v1"},
		},
		{
			name: "legacy libs",
			opts: []tmplOpt{func(_, target obj) { target["rego"] = useLib }, withLegacyLibs(lib)},
			want: []string{"from lib"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := newTemplate(t, "K8sCode", alwaysViolateRego, tc.opts...)
			e := newEngine(t, Options{})
			err := e.AddTemplate(context.Background(), ct)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("AddTemplate error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("AddTemplate: %v", err)
			}
			mustAddConstraint(t, e, newConstraint(t, "K8sCode", "c", ""))
			if got := messages(mustReview(t, e, objIn(p), EnforcementPointAudit)); !equalStrings(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHTTPSend(t *testing.T) {
	// Compiled only: no review runs, so no request is ever sent.
	const rego = `package x

violation[{"msg": msg}] {
  resp := http.send({"method": "get", "url": "http://127.0.0.1:1/"})
  msg := sprintf("%v", [resp.status_code])
}
`
	ct := newTemplate(t, "K8sHTTP", rego)
	t.Run("refused by default", func(t *testing.T) {
		e := newEngine(t, Options{})
		err := e.AddTemplate(context.Background(), ct)
		if err == nil {
			t.Fatal("AddTemplate accepted http.send by default")
		}
		if !strings.Contains(err.Error(), "http.send") {
			t.Errorf("error %q does not mention http.send", err)
		}
		if !errors.Is(err, ErrInvalidTemplate) {
			t.Errorf("error %q is not ErrInvalidTemplate", err)
		}
	})
	t.Run("allowed with EnableHTTPSend", func(t *testing.T) {
		e := newEngine(t, Options{EnableHTTPSend: true})
		if err := e.AddTemplate(context.Background(), ct); err != nil {
			t.Fatalf("AddTemplate: %v", err)
		}
	})
	t.Run("other builtins can be disabled", func(t *testing.T) {
		e := newEngine(t, Options{DisabledBuiltins: []string{"sprintf"}})
		err := e.AddTemplate(context.Background(), newTemplate(t, echoKind, echoRego, withSchema(t, echoSchema)))
		if err == nil || !strings.Contains(err.Error(), "sprintf") {
			t.Fatalf("AddTemplate error = %v, want one naming sprintf", err)
		}
	})
}

// TestEvaluationResults checks how Rego results and errors come back, as
// with Gatekeeper's Rego driver.
func TestEvaluationResults(t *testing.T) {
	in := objIn(pod("default", "p", nil))
	t.Run("details", func(t *testing.T) {
		e := newEngine(t, Options{}, newTemplate(t, "K8sDetails",
			"package x\n\nviolation[{\"msg\": \"m\", \"details\": {\"a\": 1, \"b\": [\"c\"]}}] { true }\n"))
		mustAddConstraint(t, e, newConstraint(t, "K8sDetails", "c", ""))
		vs := mustReview(t, e, in, EnforcementPointAudit)
		if len(vs) != 1 {
			t.Fatalf("got %q", messages(vs))
		}
		b, err := json.Marshal(vs[0].Details)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != `{"a":1,"b":["c"]}` {
			t.Errorf("details = %s", b)
		}
	})
	t.Run("one violation per result", func(t *testing.T) {
		e := newEngine(t, Options{}, newTemplate(t, "K8sMany",
			"package x\n\nviolation[{\"msg\": m}] { m := [\"a\", \"b\", \"c\"][_] }\n"))
		mustAddConstraint(t, e, newConstraint(t, "K8sMany", "c", ""))
		if got := messages(mustReview(t, e, in, EnforcementPointAudit)); !equalStrings(got, []string{"a", "b", "c"}) {
			t.Errorf("got %q", got)
		}
	})
	t.Run("eval error becomes a violation", func(t *testing.T) {
		rego := "package x\n\nx = input.review.object.metadata.name { true }\nx = \"other\" { true }\n\nviolation[{\"msg\": x}] { true }\n"
		e := newEngine(t, Options{}, newTemplate(t, "K8sConflict", rego))
		mustAddConstraint(t, e, newConstraint(t, "K8sConflict", "c", "enforcementAction: warn"))
		vs := mustReview(t, e, in, EnforcementPointAudit)
		if len(vs) != 1 || !strings.Contains(vs[0].Message, "eval_conflict_error") {
			t.Fatalf("got %q, want one eval_conflict_error", messages(vs))
		}
		if vs[0].EnforcementAction != ActionWarn {
			t.Errorf("eval error has action %q, want the constraint's", vs[0].EnforcementAction)
		}
	})
	t.Run("non-string msg fails the review", func(t *testing.T) {
		e := newEngine(t, Options{}, newTemplate(t, "K8sNumber", "package x\n\nviolation[{\"msg\": 1}] { true }\n"))
		mustAddConstraint(t, e, newConstraint(t, "K8sNumber", "c", ""))
		if _, err := e.Review(context.Background(), in, EnforcementPointAudit); err == nil || !strings.Contains(err.Error(), "msg") {
			t.Fatalf("Review error = %v, want one about msg", err)
		}
	})
	t.Run("no constraint, no violation", func(t *testing.T) {
		e := newEngine(t, Options{}, newTemplate(t, alwaysKind, alwaysViolateRego))
		if vs := mustReview(t, e, in, EnforcementPointAudit); len(vs) != 0 {
			t.Fatalf("got %q", messages(vs))
		}
	})
	t.Run("violations name their constraint", func(t *testing.T) {
		e := newEngine(t, Options{}, newTemplate(t, alwaysKind, alwaysViolateRego))
		mustAddConstraint(t, e, newConstraint(t, alwaysKind, "b", ""))
		mustAddConstraint(t, e, newConstraint(t, alwaysKind, "a", ""))
		vs := mustReview(t, e, in, EnforcementPointAudit)
		var names []string
		for _, v := range vs {
			if v.Constraint == nil || v.Constraint.GetKind() != alwaysKind {
				t.Fatalf("violation without its constraint: %+v", v)
			}
			names = append(names, v.Constraint.GetName())
		}
		if got := sortedCopy(names); !equalStrings(got, []string{"a", "b"}) {
			t.Errorf("constraints %q", got)
		}
	})
}

func TestTracing(t *testing.T) {
	in := objIn(pod("default", "p", nil))
	for _, tracing := range []bool{false, true} {
		e := newEngine(t, Options{Tracing: tracing}, newTemplate(t, alwaysKind, alwaysViolateRego))
		mustAddConstraint(t, e, newConstraint(t, alwaysKind, "c", ""))
		resp, err := e.Review(context.Background(), in, EnforcementPointAudit)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Trace != ""; got != tracing {
			t.Errorf("Tracing=%v: trace present = %v (%d bytes)", tracing, got, len(resp.Trace))
		}
	}
}

// TestConcurrentReviews reviews from several goroutines while constraints
// and data change; run with -race.
func TestConcurrentReviews(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, Options{}, newTemplate(t, alwaysKind, alwaysViolateRego))
	mustAddConstraint(t, e, newConstraint(t, alwaysKind, "fixed", "{match: {namespaceSelector: {matchLabels: {env: prod}}}}"))
	mustAddData(t, e, namespaceU("shop", map[string]string{"env": "prod"}))
	in := objIn(pod("shop", "p", nil))

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := e.Review(ctx, in, EnforcementPointAudit)
				if err != nil {
					errs <- err
					return
				}
				found := false
				for _, v := range resp.Violations {
					if v.Constraint.GetName() == "fixed" && v.Message == "bad" {
						found = true
					}
				}
				if !found {
					errs <- fmt.Errorf("the fixed constraint did not fire: %q", messages(resp.Violations))
					return
				}
			}
		})
	}
	for i := range 20 {
		c := newConstraint(t, alwaysKind, fmt.Sprintf("c%d", i), "")
		if err := e.AddConstraint(ctx, c); err != nil {
			t.Error(err)
		}
		if err := e.AddData(ctx, deployment("shop", fmt.Sprintf("d%d", i), nil)); err != nil {
			t.Error(err)
		}
		if err := e.RemoveConstraint(ctx, c); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, n := e.Counts(); n != 1 {
		t.Errorf("Counts: %d constraints, want 1", n)
	}
}
