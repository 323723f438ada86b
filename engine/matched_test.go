package engine

import (
	"context"
	"testing"
)

// TestListMatched: with Object.ListMatched, Response.Matched lists every
// constraint whose match selected the object, with or without violations,
// and none other; without it, Matched stays empty.
func TestListMatched(t *testing.T) {
	const kind = "K8sNameIsBad"
	e := newEngine(t, Options{}, newTemplate(t, kind,
		"package x\n\nviolation[{\"msg\": \"bad name\"}] { input.review.object.metadata.name == \"bad\" }\n"))
	mustAddConstraint(t, e, newConstraint(t, kind, "pods", "match: {kinds: [{apiGroups: [\"\"], kinds: [Pod]}]}"))
	mustAddConstraint(t, e, newConstraint(t, kind, "everything", ""))
	mustAddConstraint(t, e, newConstraint(t, kind, "deployments", "match: {kinds: [{apiGroups: [apps], kinds: [Deployment]}]}"))
	mustAddConstraint(t, e, newConstraint(t, kind, "dryrun-pods", "enforcementAction: dryrun\nmatch: {kinds: [{apiGroups: [\"\"], kinds: [Pod]}]}"))

	for _, tc := range []struct {
		name       string
		object     string
		violations int
	}{
		{name: "no violation", object: "good", violations: 0},
		{name: "violations", object: "bad", violations: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &Object{Object: pod("default", tc.object, nil), ListMatched: true}
			resp, err := e.Review(context.Background(), in, EnforcementPointAudit)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Violations) != tc.violations {
				t.Errorf("%d violations, want %d: %q", len(resp.Violations), tc.violations, messages(resp.Violations))
			}
			var got []string
			for _, c := range resp.Matched {
				got = append(got, c.GetKind()+"/"+c.GetName())
			}
			want := []string{kind + "/dryrun-pods", kind + "/everything", kind + "/pods"}
			if !equalStrings(sortedCopy(got), want) {
				t.Errorf("Matched = %q, want %q", got, want)
			}
			in.ListMatched = false
			resp, err = e.Review(context.Background(), in, EnforcementPointAudit)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Matched) != 0 {
				t.Errorf("without ListMatched, Matched = %d constraints", len(resp.Matched))
			}
		})
	}
}
