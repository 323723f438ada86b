package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

func TestEnforcementActions(t *testing.T) {
	tests := []struct {
		name       string
		spec       string
		ep         string
		wantAction string   // Violation.EnforcementAction
		wantActs   []string // Violation.Actions, sorted; nil means no violation
	}{
		{name: "default is deny", spec: "", ep: EnforcementPointWebhook, wantAction: ActionDeny, wantActs: []string{ActionDeny}},
		{name: "deny", spec: "enforcementAction: deny", ep: EnforcementPointWebhook, wantAction: ActionDeny, wantActs: []string{ActionDeny}},
		{name: "warn", spec: "enforcementAction: warn", ep: EnforcementPointWebhook, wantAction: ActionWarn, wantActs: []string{ActionWarn}},
		{name: "dryrun", spec: "enforcementAction: dryrun", ep: EnforcementPointWebhook, wantAction: ActionDryrun, wantActs: []string{ActionDryrun}},
		{name: "deny at audit", spec: "enforcementAction: deny", ep: EnforcementPointAudit, wantAction: ActionDeny, wantActs: []string{ActionDeny}},
		{name: "dryrun at gator", spec: "enforcementAction: dryrun", ep: EnforcementPointGator, wantAction: ActionDryrun, wantActs: []string{ActionDryrun}},
	}
	scoped := `
enforcementAction: scoped
scopedEnforcementActions:
- action: deny
  enforcementPoints: [{name: validation.gatekeeper.sh}]
- action: warn
  enforcementPoints: [{name: audit.gatekeeper.sh}, {name: validation.gatekeeper.sh}]
`
	webhookOnly := `
enforcementAction: scoped
scopedEnforcementActions:
- action: deny
  enforcementPoints: [{name: validation.gatekeeper.sh}]
`
	everywhere := `
enforcementAction: scoped
scopedEnforcementActions:
- action: dryrun
  enforcementPoints: [{name: '*'}]
`
	tests = append(tests, []struct {
		name       string
		spec       string
		ep         string
		wantAction string
		wantActs   []string
	}{
		{name: "scoped at webhook", spec: scoped, ep: EnforcementPointWebhook, wantAction: ActionScoped, wantActs: []string{ActionDeny, ActionWarn}},
		{name: "scoped at audit", spec: scoped, ep: EnforcementPointAudit, wantAction: ActionScoped, wantActs: []string{ActionWarn}},
		{name: "scoped at unlisted gator", spec: scoped, ep: EnforcementPointGator},
		{name: "scoped webhook-only at webhook", spec: webhookOnly, ep: EnforcementPointWebhook, wantAction: ActionScoped, wantActs: []string{ActionDeny}},
		{name: "scoped webhook-only at audit", spec: webhookOnly, ep: EnforcementPointAudit},
		{name: "scoped star at webhook", spec: everywhere, ep: EnforcementPointWebhook, wantAction: ActionScoped, wantActs: []string{ActionDryrun}},
		{name: "scoped star at audit", spec: everywhere, ep: EnforcementPointAudit, wantAction: ActionScoped, wantActs: []string{ActionDryrun}},
		{name: "scoped star at gator", spec: everywhere, ep: EnforcementPointGator, wantAction: ActionScoped, wantActs: []string{ActionDryrun}},
	}...)

	ct := newTemplate(t, alwaysKind, alwaysViolateRego)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Options{}, ct)
			mustAddConstraint(t, e, newConstraint(t, alwaysKind, "c", tc.spec))
			var in ReviewInput = objIn(pod("default", "p", nil))
			if tc.ep == EnforcementPointWebhook {
				in = &Admission{Request: request(t, admissionv1.Create, pod("default", "p", nil), nil)}
			}
			vs := mustReview(t, e, in, tc.ep)
			if tc.wantActs == nil {
				if len(vs) != 0 {
					t.Fatalf("got %d violations (%q), want none", len(vs), messages(vs))
				}
				return
			}
			if len(vs) != 1 {
				t.Fatalf("got %d violations (%q), want 1", len(vs), messages(vs))
			}
			v := vs[0]
			if v.EnforcementAction != tc.wantAction {
				t.Errorf("EnforcementAction = %q, want %q", v.EnforcementAction, tc.wantAction)
			}
			if got := sortedCopy(v.Actions); !equalStrings(got, tc.wantActs) {
				t.Errorf("Actions = %q, want %q", got, tc.wantActs)
			}
			for _, a := range tc.wantActs {
				if !v.HasAction(a) {
					t.Errorf("HasAction(%q) = false", a)
				}
			}
			if v.HasAction("bogus") {
				t.Error(`HasAction("bogus") = true`)
			}
		})
	}
}

// TestEnforcementPointsOption checks that an engine built for some
// enforcement points refuses reviews for others.
func TestEnforcementPointsOption(t *testing.T) {
	e := newEngine(t, Options{EnforcementPoints: []string{EnforcementPointAudit}}, newTemplate(t, alwaysKind, alwaysViolateRego))
	mustAddConstraint(t, e, newConstraint(t, alwaysKind, "c", ""))
	in := objIn(pod("default", "p", nil))
	if vs := mustReview(t, e, in, EnforcementPointAudit); len(vs) != 1 {
		t.Fatalf("audit: got %q, want one violation", messages(vs))
	}
	if _, err := e.Review(context.Background(), in, EnforcementPointWebhook); err == nil {
		t.Fatal("webhook review on an audit-only engine succeeded")
	}
}

func TestValidateEnforcementAction(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		wantErr string // substring naming the field; "" means valid
	}{
		{name: "absent", spec: ""},
		{name: "empty", spec: "enforcementAction: ''"},
		{name: "deny", spec: "enforcementAction: deny"},
		{name: "warn", spec: "enforcementAction: warn"},
		{name: "dryrun", spec: "enforcementAction: dryrun"},
		{name: "scoped", spec: "{enforcementAction: scoped, scopedEnforcementActions: [{action: warn, enforcementPoints: [{name: audit.gatekeeper.sh}]}]}"},
		{name: "unknown action", spec: "enforcementAction: block", wantErr: "spec.enforcementAction"},
		{name: "action is case sensitive", spec: "enforcementAction: Deny", wantErr: "spec.enforcementAction"},
		{name: "not a string", spec: "enforcementAction: [deny]", wantErr: "spec.enforcementAction"},
		{name: "scoped without scopedEnforcementActions", spec: "enforcementAction: scoped", wantErr: "spec.scopedEnforcementActions"},
		{name: "scoped with empty scopedEnforcementActions", spec: "{enforcementAction: scoped, scopedEnforcementActions: []}", wantErr: "spec.scopedEnforcementActions"},
		{name: "scoped with unknown action", spec: "{enforcementAction: scoped, scopedEnforcementActions: [{action: block, enforcementPoints: [{name: '*'}]}]}",
			wantErr: "spec.scopedEnforcementActions[0].action"},
		{name: "scoped cannot nest scoped", spec: "{enforcementAction: scoped, scopedEnforcementActions: [{action: scoped, enforcementPoints: [{name: '*'}]}]}",
			wantErr: "spec.scopedEnforcementActions[0].action"},
		{name: "scoped without enforcementPoints", spec: "{enforcementAction: scoped, scopedEnforcementActions: [{action: deny, enforcementPoints: [{name: '*'}]}, {action: warn}]}",
			wantErr: "spec.scopedEnforcementActions[1].enforcementPoints"},
	}
	ct := newTemplate(t, alwaysKind, alwaysViolateRego)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newConstraint(t, alwaysKind, "c", tc.spec)
			e := newEngine(t, Options{}, ct)
			errs := map[string]error{
				"ValidateEnforcementAction": ValidateEnforcementAction(c),
				"ValidateConstraint":        e.ValidateConstraint(c),
				"AddConstraint":             e.AddConstraint(context.Background(), c),
			}
			for what, err := range errs {
				if tc.wantErr == "" {
					if err != nil {
						t.Errorf("%s: %v", what, err)
					}
					continue
				}
				if err == nil {
					t.Errorf("%s accepted %q", what, tc.spec)
					continue
				}
				if !errors.Is(err, ErrEnforcementAction) {
					t.Errorf("%s error %q is not ErrEnforcementAction", what, err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("%s error %q does not name %q", what, err, tc.wantErr)
				}
			}
			if tc.wantErr != "" {
				if _, n := e.Counts(); n != 0 {
					t.Errorf("rejected constraint was counted: %d constraints", n)
				}
			}
		})
	}
}

// TestTemplateOperations checks that a template restricted to CREATE is not
// evaluated for an UPDATE at the webhook, and that the restriction applies
// only at the webhook enforcement point.
func TestTemplateOperations(t *testing.T) {
	p := pod("default", "p", nil)
	create := &Admission{Request: request(t, admissionv1.Create, p, nil)}
	update := &Admission{Request: request(t, admissionv1.Update, p, p)}
	del := &Admission{Request: request(t, admissionv1.Delete, nil, p)}
	tests := []struct {
		name string
		ops  []string
		in   ReviewInput
		ep   string
		want bool
	}{
		{"CREATE-only: CREATE at webhook", []string{"CREATE"}, create, EnforcementPointWebhook, true},
		{"CREATE-only: UPDATE at webhook", []string{"CREATE"}, update, EnforcementPointWebhook, false},
		{"CREATE-only: DELETE at webhook", []string{"CREATE"}, del, EnforcementPointWebhook, false},
		{"CREATE-only: UPDATE at audit", []string{"CREATE"}, update, EnforcementPointAudit, true},
		{"CREATE-only: UPDATE at gator", []string{"CREATE"}, update, EnforcementPointGator, true},
		{"CREATE-only: object at audit", []string{"CREATE"}, objIn(p), EnforcementPointAudit, true},
		{"CREATE,UPDATE: UPDATE at webhook", []string{"CREATE", "UPDATE"}, update, EnforcementPointWebhook, true},
		{"star: DELETE at webhook", []string{"*"}, del, EnforcementPointWebhook, true},
		{"unset: UPDATE at webhook", nil, update, EnforcementPointWebhook, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []tmplOpt
			if tc.ops != nil {
				opts = append(opts, withOperations(tc.ops...))
			}
			e := newEngine(t, Options{}, newTemplate(t, alwaysKind, alwaysViolateRego, opts...))
			mustAddConstraint(t, e, newConstraint(t, alwaysKind, "c", ""))
			vs := mustReview(t, e, tc.in, tc.ep)
			if got := len(vs) == 1; got != tc.want || len(vs) > 1 {
				t.Fatalf("got violations %q, want violation=%v", messages(vs), tc.want)
			}
		})
	}
}

// TestScopedAutoreject checks that an autoreject of a scoped constraint
// carries the actions for the enforcement point, and that a scoped
// constraint not enforced at a point is not even matched there.
func TestScopedAutoreject(t *testing.T) {
	e := newEngine(t, Options{}, newTemplate(t, alwaysKind, alwaysViolateRego))
	mustAddConstraint(t, e, newConstraint(t, alwaysKind, "c", `
enforcementAction: scoped
scopedEnforcementActions:
- action: deny
  enforcementPoints: [{name: validation.gatekeeper.sh}]
match:
  namespaceSelector: {matchLabels: {env: prod}}
`))
	p := pod("shop", "p", nil)
	vs := mustReview(t, e, &Admission{Request: request(t, admissionv1.Create, p, nil)}, EnforcementPointWebhook)
	if len(vs) != 1 || !strings.Contains(vs[0].Message, "unable to match") {
		t.Fatalf("webhook: got %q, want one autoreject", messages(vs))
	}
	if vs[0].EnforcementAction != ActionScoped || !equalStrings(vs[0].Actions, []string{ActionDeny}) {
		t.Errorf("webhook autoreject: action %q, actions %q", vs[0].EnforcementAction, vs[0].Actions)
	}
	if vs := mustReview(t, e, objIn(p), EnforcementPointAudit); len(vs) != 0 {
		t.Errorf("audit: got %q, want nothing", messages(vs))
	}
}
