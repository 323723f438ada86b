package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// describeResults renders results for comparison: everything a violation
// carries, in the order given.
func describeResults(t *testing.T, rs []*types.Result) []string {
	t.Helper()
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		v := toViolation(r)
		b, err := json.Marshal(map[string]any{
			"msg": v.Message, "details": v.Details, "kind": v.Constraint.GetKind(), "name": v.Constraint.GetName(),
			"constraint": v.Constraint.Object, "action": v.EnforcementAction, "actions": v.Actions,
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// TestIndexMatchesClientReview reviews every gatekeeper-library sample
// object, as CREATE, UPDATE, DELETE and CONNECT requests, at each
// enforcement point, against every library template and sample constraint
// (plus scoped and warn/dryrun variants of some, and constraints whose
// match cannot be evaluated), with the engine's index and with the
// frameworks client's Review: the results must be the same (in the order
// Results() gives: by action and message, ties in no set order).
func TestIndexMatchesClientReview(t *testing.T) {
	lib := testenv.Library(t)
	ctx := context.Background()
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref := referenceClient(t, e)
	// The library's constraint.yaml files (not constraint2.yaml...) and
	// example_*.yaml objects.
	var constraints, objects []*unstructured.Unstructured
	for _, p := range lib {
		ct, err := ParseTemplate(p.Template)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.AddTemplate(ctx, ct); err != nil {
			t.Fatal(err)
		}
		if _, err := ref.AddTemplate(ctx, ct); err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Constraints {
			if filepath.Base(c.File) == "constraint.yaml" {
				constraints = append(constraints, c.Object)
			}
		}
		for _, o := range p.Objects {
			if strings.HasPrefix(filepath.Base(o.File), "example_") {
				objects = append(objects, o.Object)
			}
		}
	}
	actions := []string{
		"enforcementAction: warn",
		"enforcementAction: dryrun",
		"enforcementAction: scoped\nscopedEnforcementActions:\n- action: deny\n  enforcementPoints: [{name: validation.gatekeeper.sh}]\n- action: warn\n  enforcementPoints: [{name: audit.gatekeeper.sh}, {name: validation.gatekeeper.sh}]",
		"enforcementAction: scoped\nscopedEnforcementActions:\n- action: dryrun\n  enforcementPoints: [{name: '*'}]",
	}
	added := 0
	for i, c := range constraints {
		err := e.AddConstraint(ctx, c)
		if _, refErr := ref.AddConstraint(ctx, c.DeepCopy()); (err == nil) != (refErr == nil) {
			t.Errorf("constraint %s: engine %v, client %v", c.GetName(), err, refErr)
		}
		if err != nil {
			continue // the library has a few constraints for other templates' versions
		}
		added++
		if i%3 != 0 {
			continue
		}
		v := c.DeepCopy()
		v.SetName(fmt.Sprintf("variant-%d", i))
		spec, _, _ := unstructured.NestedMap(v.Object, "spec")
		if spec == nil {
			spec = map[string]any{}
		}
		maps.Copy(spec, fromYAML(t, actions[i%len(actions)]).(map[string]any))
		if i%2 == 0 {
			// A namespaceSelector on a request whose namespace is not
			// known: the match cannot be decided, an autorejection.
			match, _ := spec["match"].(map[string]any)
			if match == nil {
				match = map[string]any{}
			}
			match["namespaceSelector"] = map[string]any{"matchLabels": map[string]any{"team": "x"}}
			spec["match"] = match
		}
		v.Object["spec"] = spec
		if err := e.AddConstraint(ctx, v); err != nil {
			t.Fatalf("variant of %s: %v", c.GetName(), err)
		}
		if _, err := ref.AddConstraint(ctx, v.DeepCopy()); err != nil {
			t.Fatalf("variant of %s: client: %v", c.GetName(), err)
		}
		added++
	}
	// The registry holds what the client holds: each template as added,
	// each constraint with its defaults applied.
	for _, held := range e.loadRegistry().templates {
		ct, err := ref.GetTemplate(held.template)
		if err != nil || !ct.SemanticEqual(held.template) {
			t.Errorf("template %s: client holds %v (%v)", held.kind, ct, err)
		}
		for _, c := range held.constraints {
			if want, err := ref.GetConstraint(c.u); err != nil || !reflect.DeepEqual(want.Object, c.u.Object) {
				t.Errorf("constraint %s %s: registry %v, client %v (%v)", held.kind, c.u.GetName(), c.u.Object, want, err)
			}
		}
	}
	compared, results := 0, 0
	for _, u := range objects {
		if u.GetKind() == "AdmissionReview" || u.GetName() == "" {
			continue
		}
		raw, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		gvk := u.GroupVersionKind()
		for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect} {
			req := &admissionv1.AdmissionRequest{
				UID: "u", Operation: op, Name: u.GetName(), Namespace: u.GetNamespace(),
				Object: runtime.RawExtension{Raw: raw}, OldObject: runtime.RawExtension{Raw: raw},
			}
			req.Kind.Group, req.Kind.Version, req.Kind.Kind = gvk.Group, gvk.Version, gvk.Kind
			for _, ep := range []string{EnforcementPointWebhook, EnforcementPointAudit, EnforcementPointGator} {
				r, err := newAdmissionReview(req, nil, SourceOriginal)
				if err != nil {
					t.Fatal(err)
				}
				opts := []reviews.ReviewOpt{reviews.EnforcementPoint(ep)}
				got, gotErr := e.reviewIndexed(ctx, r, ep, opts)
				want, wantErr := ref.Review(ctx, r, opts...)
				name := fmt.Sprintf("%s %s/%s %s at %s", gvk.Kind, u.GetNamespace(), u.GetName(), op, ep)
				if (gotErr == nil) != (wantErr == nil) {
					t.Errorf("%s: error %v, client %v", name, gotErr, wantErr)
					continue
				}
				// Results() orders by action and message only, and the
				// client visits templates in map order: compare as sets.
				g, w := describeResults(t, got.Results()), describeResults(t, want.Results())
				sort.Strings(g)
				sort.Strings(w)
				if !reflect.DeepEqual(g, w) {
					t.Errorf("%s:\n got %s\nwant %s", name, strings.Join(g, "\n     "), strings.Join(w, "\n     "))
				}
				compared++
				results += len(g)
			}
		}
	}
	t.Logf("%d constraints, %d reviews compared, %d results", added, compared, results)
	if compared < 1000 || results < 1000 {
		t.Errorf("too little compared: %d reviews, %d results", compared, results)
	}
}
