package expansion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/instrumentation"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/portcullis-dev/portcullis/engine"
)

// ownerTemplate refuses objects without an owner label, and says which
// operation it saw.
const ownerTemplate = `
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sowner
spec:
  crd:
    spec:
      names: {kind: K8sOwner}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sowner
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels.owner
        msg := sprintf("%v %v has no owner label (operation %v)", [input.review.kind.kind, input.review.object.metadata.name, object.get(input.review, "operation", "none")])
      }
`

// ownerConstraint judges Pods, from the given source ("" for any).
func ownerConstraint(name, source, action string) string {
	s := fmt.Sprintf(`
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sOwner
metadata:
  name: %s
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: [Pod]
`, name)
	if source != "" {
		s += "    source: " + source + "\n"
	}
	if action != "" {
		s += "  enforcementAction: " + action + "\n"
	}
	return s
}

// newEngine holds ownerTemplate and the constraints given.
func newEngine(t testing.TB, opts engine.Options, constraints ...string) *engine.Engine {
	t.Helper()
	eng, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := engine.ParseTemplate(parse(t, ownerTemplate))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := eng.AddTemplate(ctx, ct); err != nil {
		t.Fatal(err)
	}
	for _, c := range constraints {
		if err := eng.AddConstraint(ctx, parse(t, c)); err != nil {
			t.Fatal(err)
		}
	}
	return eng
}

// messages lists "[constraint] message (action)" of each violation.
func messages(resp *engine.Response) []string {
	var out []string
	for _, v := range resp.Violations {
		out = append(out, fmt.Sprintf("[%s] %s (%s %v)", v.Constraint.GetName(), v.Message, v.EnforcementAction, v.Actions))
	}
	return out
}

const pod = `
apiVersion: v1
kind: Pod
metadata: {name: lonely, namespace: web}
spec:
  containers: [{name: c, image: busybox}]
`

// TestReviewer pins how Gatekeeper's webhook, audit and gator judge an
// expanded object (pkg/expansion/aggregate.go, pkg/webhook/policy.go
// reviewRequest): the resultant is reviewed with source Generated, its
// violations reported against the parent as "[Implied by <template>]
// <message>", with the template's enforcementAction override; match.source
// chooses which constraints judge resultants.
func TestReviewer(t *testing.T) {
	warnTemplate := strings.Replace(expandDeployments, "  templateSource:", "  enforcementAction: warn\n  templateSource:", 1)
	tests := []struct {
		name        string
		constraints []string
		templates   []string
		object      string
		want        []string
	}{
		{
			name: "deployment judged by its pod", constraints: []string{ownerConstraint("pods-need-owner", "", "")},
			templates: []string{expandDeployments}, object: deployment,
			want: []string{"[pods-need-owner] [Implied by expand-deployments] Pod nginx-deployment-pod has no owner label (operation ) (deny [deny])"},
		},
		{
			name: "a pod's own review is unchanged", constraints: []string{ownerConstraint("pods-need-owner", "", "")},
			templates: []string{expandDeployments}, object: pod,
			want: []string{"[pods-need-owner] Pod lonely has no owner label (operation ) (deny [deny])"},
		},
		{
			name: "no template: the deployment passes", constraints: []string{ownerConstraint("pods-need-owner", "", "")},
			object: deployment,
		},
		{
			name: "source Generated judges the resultant", constraints: []string{ownerConstraint("gen", "Generated", "")},
			templates: []string{expandDeployments}, object: deployment,
			want: []string{"[gen] [Implied by expand-deployments] Pod nginx-deployment-pod has no owner label (operation ) (deny [deny])"},
		},
		{
			name: "source Generated spares real pods", constraints: []string{ownerConstraint("gen", "Generated", "")},
			templates: []string{expandDeployments}, object: pod,
		},
		{
			name: "source Original spares resultants", constraints: []string{ownerConstraint("orig", "Original", "")},
			templates: []string{expandDeployments}, object: deployment,
		},
		{
			name: "source Original judges real pods", constraints: []string{ownerConstraint("orig", "Original", "")},
			templates: []string{expandDeployments}, object: pod,
			want: []string{"[orig] Pod lonely has no owner label (operation ) (deny [deny])"},
		},
		{
			name: "the template's action overrides the constraint's", constraints: []string{ownerConstraint("pods-need-owner", "", "dryrun")},
			templates: []string{warnTemplate}, object: deployment,
			want: []string{"[pods-need-owner] [Implied by expand-deployments] Pod nginx-deployment-pod has no owner label (operation ) (warn [warn])"},
		},
		{
			name: "recursion: the pod of a cronjob's job", constraints: []string{ownerConstraint("pods-need-owner", "", "")},
			templates: []string{expandCronJobs, expandJobs}, object: cronJob,
			want: []string{"[pods-need-owner] [Implied by expand-jobs] Pod nightly-job-pod has no owner label (operation ) (deny [deny])"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Reviewer{Engine: newEngine(t, engine.Options{}, tc.constraints...), System: system(t, nil, tc.templates...)}
			resp, err := r.Review(context.Background(), &engine.Object{Object: parse(t, tc.object), Source: engine.SourceOriginal}, engine.EnforcementPointAudit)
			if err != nil {
				t.Fatal(err)
			}
			if got := messages(resp); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("violations:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// admissionRequest is a request for the object in YAML.
func admissionRequest(t *testing.T, op admissionv1.Operation, y string) *admissionv1.AdmissionRequest {
	t.Helper()
	u := parse(t, y)
	raw, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	gvk := u.GroupVersionKind()
	req := &admissionv1.AdmissionRequest{UID: "uid-1", Operation: op, Name: u.GetName(), Namespace: u.GetNamespace()}
	req.Kind.Group, req.Kind.Version, req.Kind.Kind = gvk.Group, gvk.Version, gvk.Kind
	if op == admissionv1.Delete {
		req.OldObject = runtime.RawExtension{Raw: raw}
	} else {
		req.Object = runtime.RawExtension{Raw: raw}
	}
	return req
}

// TestReviewerAdmission: an admission request expands its object (the
// oldObject of a DELETE) and the resultant is reviewed with the request's
// operation, as Gatekeeper's createReviewForResultant does.
func TestReviewerAdmission(t *testing.T) {
	r := &Reviewer{Engine: newEngine(t, engine.Options{}, ownerConstraint("pods-need-owner", "", "")), System: system(t, nil, expandDeployments)}
	for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update, admissionv1.Delete} {
		t.Run(string(op), func(t *testing.T) {
			resp, err := r.Review(context.Background(), &engine.Admission{Request: admissionRequest(t, op, deployment), Source: engine.SourceOriginal}, engine.EnforcementPointWebhook)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{fmt.Sprintf("[pods-need-owner] [Implied by expand-deployments] Pod nginx-deployment-pod has no owner label (operation %s) (deny [deny])", op)}
			if got := messages(resp); !reflect.DeepEqual(got, want) {
				t.Errorf("violations %v, want %v", got, want)
			}
		})
	}
	t.Run("the request's kind and namespace are the object's", func(t *testing.T) {
		req := admissionRequest(t, admissionv1.Create, strings.Replace(deployment, "kind: Deployment", "kind: Unrelated", 1))
		req.Kind.Kind, req.Namespace = "Deployment", "from-request"
		resp, err := r.Review(context.Background(), &engine.Admission{Request: req}, engine.EnforcementPointWebhook)
		if err != nil || len(resp.Violations) != 1 {
			t.Fatalf("Review = %v, %v; want one violation", resp, err)
		}
	})
}

// TestReviewerErrors: what cannot be expanded fails the review with an
// *Error naming the object, the template and the field, beside the
// object's own verdict, which it does not drop (review finding 7).
func TestReviewerErrors(t *testing.T) {
	everything := "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sOwner\nmetadata: {name: all-need-owner}\n"
	r := &Reviewer{Engine: newEngine(t, engine.Options{}, everything), System: system(t, nil, expandDeployments)}
	noTemplate := strings.Replace(deployment, "  template:\n", "  notemplate:\n", 1)
	resp, err := r.Review(context.Background(), &engine.Object{Object: parse(t, noTemplate)}, engine.EnforcementPointAudit)
	want := `expanding Deployment "web/Nginx-Deployment": ExpansionTemplate "expand-deployments": templateSource not found: Deployment "web/Nginx-Deployment" has no field spec.template`
	var expErr *Error
	if !errors.As(err, &expErr) || err.Error() != want {
		t.Errorf("Review = %v\nwant an *Error: %s", err, want)
	}
	wantOwn := []string{"[all-need-owner] Deployment Nginx-Deployment has no owner label (operation ) (deny [deny])"}
	if got := messages(resp); !reflect.DeepEqual(got, wantOwn) {
		t.Errorf("with the expansion failed, violations:\n%s\nwant the object's own:\n%s", strings.Join(got, "\n"), strings.Join(wantOwn, "\n"))
	}
	// Without a System, or with nothing to expand, the engine's answer.
	plain := &Reviewer{Engine: r.Engine}
	if resp, err := plain.Review(context.Background(), &engine.Object{Object: parse(t, noTemplate)}, engine.EnforcementPointAudit); err != nil || !reflect.DeepEqual(messages(resp), wantOwn) {
		t.Errorf("without a System: %v, %v", resp, err)
	}
	if _, err := r.Review(context.Background(), &engine.Admission{}, engine.EnforcementPointWebhook); err == nil {
		t.Error("a request-less Admission was reviewed")
	}
}

// TestReviewerStats: a resultant's stats are labeled with its template, as
// gator test --stats shows them (Gatekeeper's AggregateStats).
func TestReviewerStats(t *testing.T) {
	everything := "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sOwner\nmetadata: {name: all-need-owner}\n"
	r := &Reviewer{Engine: newEngine(t, engine.Options{GatherStats: true}, everything), System: system(t, nil, expandDeployments)}
	resp, err := r.Review(context.Background(), &engine.Object{Object: parse(t, deployment)}, engine.EnforcementPointGator)
	if err != nil {
		t.Fatal(err)
	}
	implied := 0
	for _, s := range resp.Stats {
		for _, l := range s.Labels {
			if l.Name == StatLabel && l.Value == "expand-deployments" {
				implied++
			}
		}
	}
	if len(resp.Violations) != 2 || implied == 0 || implied == len(resp.Stats) {
		t.Errorf("%d of %d stats entries labeled %q; want the resultant's only", implied, len(resp.Stats), StatLabel)
	}
}

// TestAggregate: the override replaces the actions of a scoped constraint's
// violation too, and the child's values are not shared with the parent.
func TestAggregate(t *testing.T) {
	parent := &engine.Response{Trace: "parent"}
	label := &instrumentation.Label{Name: "x", Value: "y"}
	child := &engine.Response{
		Violations: []engine.Violation{{Message: "m", EnforcementAction: engine.ActionScoped, Actions: []string{engine.ActionDeny, engine.ActionWarn}}},
		Stats:      []*instrumentation.StatsEntry{{Scope: "template", Labels: []*instrumentation.Label{label}}},
		Trace:      "child",
	}
	Aggregate(parent, child, &Resultant{TemplateName: "t", EnforcementAction: engine.ActionDryrun})
	v := parent.Violations[0]
	if v.Message != "[Implied by t] m" || v.EnforcementAction != engine.ActionDryrun || !reflect.DeepEqual(v.Actions, []string{engine.ActionDryrun}) {
		t.Errorf("violation %+v", v)
	}
	if child.Violations[0].Message != "m" || len(child.Stats[0].Labels) != 1 {
		t.Error("Aggregate changed the child's response")
	}
	if len(parent.Stats[0].Labels) != 2 || parent.Trace != "parent\n\nchild" {
		t.Errorf("stats %v, trace %q", parent.Stats[0].Labels, parent.Trace)
	}
}
