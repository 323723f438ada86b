package audit

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	podGK    = schema.GroupKind{Kind: "Pod"}
	deployGK = schema.GroupKind{Group: "apps", Kind: "Deployment"}
)

func pod(name string) StatusViolation {
	return StatusViolation{Version: "v1", Kind: "Pod", Namespace: "ns", Name: name, Message: "m", EnforcementAction: "deny"}
}

func deploy(name string) StatusViolation {
	return StatusViolation{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: name, Message: "m", EnforcementAction: "deny"}
}

func found(limit int, vs ...StatusViolation) *tally {
	t := newTally(limit)
	for i := range vs {
		t.add(&vs[i])
	}
	return t
}

func names(vs []StatusViolation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Kind+"/"+v.Name)
	}
	return out
}

// equalStrings reports whether a and b hold the same strings in the same order.
var equalStrings = slices.Equal[[]string]

func TestComputeStatus(t *testing.T) {
	podsAndDeployments := kindMatcher{{APIGroups: []string{""}, Kinds: []string{"Pod"}}, {APIGroups: []string{"apps"}, Kinds: []string{"Deployment"}}}
	podsOnly := kindMatcher{{APIGroups: []string{""}, Kinds: []string{"Pod"}}}
	old := auditStatus{Timestamp: "2026-01-01T00:00:00Z", Total: 10, Violations: []StatusViolation{pod("p1"), pod("p2"), deploy("d1")}}
	podsFailed := newFailures()
	podsFailed.kinds[podGK] = true
	appsFailed := newFailures()
	appsFailed.groups["apps"] = true

	for name, tc := range map[string]struct {
		cur       auditStatus
		found     *tally
		fail      *failures
		kinds     kindMatcher
		prev      map[schema.GroupKind]int
		limit     int
		wantTotal int
		wantNames []string
	}{
		"complete run: only what was found, fixed ones gone": {
			cur: old, found: found(20, deploy("d2")), fail: newFailures(), kinds: podsAndDeployments, limit: 20,
			wantTotal: 1, wantNames: []string{"Deployment/d2"},
		},
		"nothing found: cleared": {
			cur: old, found: nil, fail: newFailures(), kinds: podsAndDeployments, limit: 20, wantTotal: 0,
		},
		"pods failed: their entries and count kept from the previous run": {
			cur: old, found: found(20, deploy("d2")), fail: podsFailed, kinds: podsAndDeployments,
			prev: map[schema.GroupKind]int{podGK: 5, deployGK: 5}, limit: 20,
			wantTotal: 5 + 1, wantNames: []string{"Pod/p1", "Pod/p2", "Deployment/d2"},
		},
		"pods failed part-way: union of entries, larger count": {
			cur: old, found: found(20, pod("p1"), pod("p3"), deploy("d1")), fail: podsFailed, kinds: podsAndDeployments,
			prev: map[schema.GroupKind]int{podGK: 5, deployGK: 5}, limit: 20,
			wantTotal: 5 + 1, wantNames: []string{"Pod/p1", "Pod/p2", "Pod/p3", "Deployment/d1"},
		},
		"pods failed part-way: never fewer than the entries kept": {
			cur: old, found: found(20, pod("p3")), fail: podsFailed, kinds: podsOnly,
			prev: map[schema.GroupKind]int{podGK: 2}, limit: 20,
			wantTotal: 3, wantNames: []string{"Pod/p1", "Pod/p2", "Pod/p3"},
		},
		"pods failed, no previous counts: estimated from the status": {
			// 2 Pod entries, and 7 violations the status counts but does
			// not list, of unknown kinds: kept.
			cur: old, found: found(20, deploy("d2")), fail: podsFailed, kinds: podsAndDeployments, limit: 20,
			wantTotal: 2 + 7 + 1, wantNames: []string{"Pod/p1", "Pod/p2", "Deployment/d2"},
		},
		"a failure the constraint cannot match changes nothing": {
			cur: old, found: found(20, pod("p9")), fail: appsFailed, kinds: podsOnly, limit: 20,
			wantTotal: 1, wantNames: []string{"Pod/p9"},
		},
		"a failed group keeps the entries of its kinds": {
			cur: old, found: found(20, pod("p1")), fail: appsFailed, kinds: podsAndDeployments,
			prev: map[schema.GroupKind]int{podGK: 2, deployGK: 3}, limit: 20,
			wantTotal: 1 + 3, wantNames: []string{"Pod/p1", "Deployment/d1"},
		},
		"the limit applies after merging": {
			cur: old, found: found(2, deploy("d0"), deploy("d2")), fail: podsFailed, kinds: podsAndDeployments,
			prev: map[schema.GroupKind]int{podGK: 5}, limit: 2,
			// The core group sorts first: the kept Pod entries win.
			wantTotal: 5 + 2, wantNames: []string{"Pod/p1", "Pod/p2"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got := computeStatus(tc.cur, tc.found, tc.fail, tc.kinds, tc.prev, tc.limit)
			if got.total != tc.wantTotal {
				t.Errorf("total %d, want %d", got.total, tc.wantTotal)
			}
			if !equalStrings(names(got.violations), tc.wantNames) {
				t.Errorf("violations %v, want %v", names(got.violations), tc.wantNames)
			}
			sum := 0
			for _, n := range got.byKind {
				sum += n
			}
			if sum != got.total {
				t.Errorf("per-kind counts %v do not add up to the total %d", got.byKind, got.total)
			}
		})
	}
}

func TestNeedsWrite(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	recent := start.Add(-10 * time.Minute).Format(time.RFC3339)
	stale := start.Add(-2 * time.Hour).Format(time.RFC3339)
	want := desiredStatus{total: 3, violations: []StatusViolation{pod("a"), pod("b")}}
	same := auditStatus{Timestamp: recent, Total: 3, Violations: []StatusViolation{pod("a"), pod("b")}}

	for name, tc := range map[string]struct {
		cur     auditStatus
		refresh time.Duration
		want    bool
	}{
		"never audited":                {auditStatus{}, time.Hour, true},
		"unchanged, recent":            {same, time.Hour, false},
		"unchanged, refresh off":       {auditStatus{Timestamp: stale, Total: 3, Violations: same.Violations}, 0, false},
		"unchanged, timestamp too old": {auditStatus{Timestamp: stale, Total: 3, Violations: same.Violations}, time.Hour, true},
		"unparsable timestamp":         {auditStatus{Timestamp: "yesterday", Total: 3, Violations: same.Violations}, time.Hour, true},
		"total changed":                {auditStatus{Timestamp: recent, Total: 4, Violations: same.Violations}, time.Hour, true},
		"violations changed":           {auditStatus{Timestamp: recent, Total: 3, Violations: []StatusViolation{pod("a"), pod("c")}}, time.Hour, true},
		"violation's action changed":   {auditStatus{Timestamp: recent, Total: 3, Violations: []StatusViolation{pod("a"), func() StatusViolation { v := pod("b"); v.EnforcementAction = "warn"; return v }()}}, time.Hour, true},
		"fewer entries, same total":    {auditStatus{Timestamp: recent, Total: 3, Violations: []StatusViolation{pod("a")}}, time.Hour, true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := needsWrite(tc.cur, want, start, tc.refresh); got != tc.want {
				t.Errorf("needsWrite = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestStatusRoundTrip: what applyStatus writes, readAuditStatus reads back
// equal, so that an unchanged status is recognized; the other fields of
// the status are kept.
func TestStatusRoundTrip(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	scoped := pod("s")
	scoped.EnforcementAction, scoped.EnforcementActions = "scoped", []string{"dryrun", "warn"}
	cluster := StatusViolation{Version: "v1", Kind: "Namespace", Name: "team-a", Message: "m", EnforcementAction: "warn"}
	want := desiredStatus{total: 7, violations: []StatusViolation{cluster, pod("a"), scoped}}
	status := map[string]any{"byPod": []any{map[string]any{"id": "pod-a"}}, "violations": []any{"stale"}}
	applyStatus(status, want, start)
	if status["auditTimestamp"] != "2026-05-01T10:00:00Z" {
		t.Errorf("auditTimestamp %v, want the run start in UTC, RFC3339", status["auditTimestamp"])
	}
	if status["totalViolations"] != int64(7) {
		t.Errorf("totalViolations %#v", status["totalViolations"])
	}
	if _, ok := status["byPod"]; !ok {
		t.Error("byPod was dropped")
	}
	entry := status["violations"].([]any)[0].(map[string]any)
	if _, ok := entry["namespace"]; ok {
		t.Errorf("a cluster-scoped object's entry has a namespace: %v", entry)
	}
	cur := readAuditStatus(status)
	if needsWrite(cur, want, start, time.Hour) {
		t.Errorf("status read back %+v differs from what was written %+v", cur, want)
	}
	applyStatus(status, desiredStatus{}, start)
	if _, ok := status["violations"]; ok || status["totalViolations"] != int64(0) {
		t.Errorf("no violations: status %v, want totalViolations 0 and no violations", status)
	}
}
