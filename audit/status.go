package audit

import (
	"maps"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Fields of a constraint's status that the audit owns; everything else
// (byPod, conditions) belongs to the constraint controller and is kept.
const (
	fieldTimestamp  = "auditTimestamp"
	fieldTotal      = "totalViolations"
	fieldViolations = "violations"
)

// unknownKind holds, for a constraint the auditor has no per-kind counts
// of (the first run after a restart), the violations its status counts
// beyond the entries it lists, whose kinds are unknown.
var unknownKind = schema.GroupKind{Kind: "<unknown>"}

// auditStatus is the audit's part of a constraint's status.
type auditStatus struct {
	Timestamp  string
	Total      int64
	Violations []StatusViolation
}

// readAuditStatus decodes the audit fields of status, skipping malformed
// violations.
func readAuditStatus(status map[string]any) auditStatus {
	var s auditStatus
	s.Timestamp, _ = status[fieldTimestamp].(string)
	switch n := status[fieldTotal].(type) {
	case int64:
		s.Total = n
	case float64:
		s.Total = int64(n)
	case int:
		s.Total = int64(n)
	}
	list, _ := status[fieldViolations].([]any)
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		var v StatusViolation
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &v); err == nil {
			s.Violations = append(s.Violations, v)
		}
	}
	return s
}

// desiredStatus is what the audit writes for one constraint.
type desiredStatus struct {
	total      int
	violations []StatusViolation
	// byKind are the totals per kind, remembered for the next run.
	byKind map[schema.GroupKind]int
}

// computeStatus merges what a run found for a constraint (nil: nothing)
// with its current status. When a kind the constraint can match failed to
// list (fail affects kinds), what was found before for the failed kinds is
// kept: their entries in status.violations, and their counts, from prev
// (the totals per kind of the previous run) or, without it (the first run
// after a restart), estimated from the current status. Otherwise the
// result is only what was found.
func computeStatus(cur auditStatus, found *tally, fail *failures, kinds kindMatcher, prev map[schema.GroupKind]int, limit int) desiredStatus {
	if found == nil {
		found = newTally(limit)
	}
	out := desiredStatus{byKind: make(map[schema.GroupKind]int, len(found.byKind))}
	maps.Copy(out.byKind, found.byKind)
	top := topN{n: limit}
	seen := make(map[string]bool, len(found.top.items))
	for _, v := range found.top.items {
		top.add(v)
		seen[v.key()] = true
	}
	if !fail.empty() && fail.affects(kinds) {
		if prev == nil {
			prev = estimateByKind(cur)
		}
		// A failed kind counts the most of: what this run found, what the
		// previous run counted, and the distinct entries held for it.
		held := map[schema.GroupKind]int{}
		for _, v := range found.top.items {
			held[v.groupKind()]++
		}
		for i := range cur.Violations {
			v := cur.Violations[i]
			if !fail.covers(v.groupKind()) || seen[v.key()] {
				continue
			}
			seen[v.key()] = true
			held[v.groupKind()]++
			top.add(&v)
		}
		for gk, n := range prev {
			if gk == unknownKind || fail.covers(gk) {
				out.byKind[gk] = max(out.byKind[gk], n)
			}
		}
		for gk, n := range held {
			if fail.covers(gk) {
				out.byKind[gk] = max(out.byKind[gk], n)
			}
		}
	}
	for _, n := range out.byKind {
		out.total += n
	}
	out.violations = top.sorted()
	return out
}

// estimateByKind counts a status's entries per kind; the rest of its total
// goes to unknownKind.
func estimateByKind(cur auditStatus) map[schema.GroupKind]int {
	out := map[schema.GroupKind]int{}
	for i := range cur.Violations {
		out[cur.Violations[i].groupKind()]++
	}
	if rest := int(cur.Total) - len(cur.Violations); rest > 0 {
		out[unknownKind] = rest
	}
	return out
}

// needsWrite reports whether a constraint's status must be written with
// --audit-status-on-change (without it, every run writes): when it was
// never audited, when its total or its violations changed, or when
// its auditTimestamp is at least refresh old (refresh 0: never for that
// reason alone). Writing only on change keeps a quiet cluster's
// constraints from being rewritten, and their watchers woken, every run;
// the refresh keeps auditTimestamp from going stale for longer than that.
func needsWrite(cur auditStatus, want desiredStatus, start time.Time, refresh time.Duration) bool {
	if cur.Timestamp == "" || cur.Total != int64(want.total) || !equalViolations(cur.Violations, want.violations) {
		return true
	}
	if refresh <= 0 {
		return false
	}
	ts, err := time.Parse(time.RFC3339, cur.Timestamp)
	return err != nil || start.Sub(ts) >= refresh
}

func equalViolations(a, b []StatusViolation) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].key() != b[i].key() {
			return false
		}
	}
	return true
}

// applyStatus sets the audit fields of status (a copy the caller owns).
func applyStatus(status map[string]any, want desiredStatus, start time.Time) {
	status[fieldTimestamp] = start.UTC().Format(time.RFC3339)
	status[fieldTotal] = int64(want.total)
	if len(want.violations) == 0 {
		delete(status, fieldViolations)
		return
	}
	list := make([]any, 0, len(want.violations))
	for _, v := range want.violations {
		m := map[string]any{
			"group":             v.Group,
			"version":           v.Version,
			"kind":              v.Kind,
			"name":              v.Name,
			"message":           v.Message,
			"enforcementAction": v.EnforcementAction,
		}
		if v.Namespace != "" {
			m["namespace"] = v.Namespace
		}
		if len(v.EnforcementActions) > 0 {
			actions := make([]any, 0, len(v.EnforcementActions))
			for _, a := range v.EnforcementActions {
				actions = append(actions, a)
			}
			m["enforcementActions"] = actions
		}
		list = append(list, m)
	}
	status[fieldViolations] = list
}
