package audit

import (
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestViolationSeries: portcullis_audit_violations has one series per
// constraint, action and namespace while the violations span at most
// maxNamespaces namespaces, else one per constraint and action with the
// namespace empty. A series a run no longer finds reads 0 while its
// constraint is audited and the counts are split by namespace (review
// finding 10); it is deleted with its constraint or its namespace, or
// when the counts are summed.
func TestViolationSeries(t *testing.T) {
	deny := constraintKey{Kind: "K8sA", Name: "deny"}
	warn := constraintKey{Kind: "K8sA", Name: "warn"}
	series := map[seriesKey]int{
		{constraint: deny, action: "deny", namespace: "a"}: 2,
		{constraint: deny, action: "deny", namespace: "b"}: 3,
		{constraint: deny, action: "deny", namespace: ""}:  1,
		{constraint: warn, action: "warn", namespace: "a"}: 4,
	}
	both := map[constraintKey]bool{deny: true, warn: true}
	list := func() string {
		var out []string
		ch := make(chan prometheus.Metric, 100)
		violationsByConstraint.Collect(ch)
		close(ch)
		for pm := range ch {
			var m dto.Metric
			if err := pm.Write(&m); err != nil {
				t.Fatal(err)
			}
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out = append(out, labels["constraint_name"]+"/"+labels["enforcement_action"]+"/"+labels["namespace"]+"="+
				strconv.FormatFloat(m.GetGauge().GetValue(), 'g', -1, 64))
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	seriesState.last = nil
	violationsByConstraint.Reset()
	recordViolationSeries(series, both, 2, nil)
	if got, want := list(), "deny/deny/=1 deny/deny/a=2 deny/deny/b=3 warn/warn/a=4"; got != want {
		t.Errorf("by namespace: %s, want %s", got, want)
	}
	// Namespace b's violations vanish, the warn constraint's too: 0.
	delete(series, seriesKey{constraint: deny, action: "deny", namespace: "b"})
	delete(series, seriesKey{constraint: warn, action: "warn", namespace: "a"})
	recordViolationSeries(series, both, 2, nil)
	if got, want := list(), "deny/deny/=1 deny/deny/a=2 deny/deny/b=0 warn/warn/a=0"; got != want {
		t.Errorf("violations vanished: %s, want %s", got, want)
	}
	// Still 0 a run later.
	recordViolationSeries(series, both, 2, nil)
	if got, want := list(), "deny/deny/=1 deny/deny/a=2 deny/deny/b=0 warn/warn/a=0"; got != want {
		t.Errorf("a run later: %s, want %s", got, want)
	}
	// The warn constraint is deleted: its series goes.
	recordViolationSeries(series, map[constraintKey]bool{deny: true}, 2, nil)
	if got, want := list(), "deny/deny/=1 deny/deny/a=2 deny/deny/b=0"; got != want {
		t.Errorf("warn deleted: %s, want %s", got, want)
	}
	// Namespace b is deleted: its zero goes, so that zeros do not pile up
	// as namespaces come and go; a is still there.
	goneB := func(ns string) bool { return ns == "b" }
	recordViolationSeries(series, map[constraintKey]bool{deny: true}, 2, goneB)
	if got, want := list(), "deny/deny/=1 deny/deny/a=2"; got != want {
		t.Errorf("namespace b deleted: %s, want %s", got, want)
	}
	series[seriesKey{constraint: deny, action: "deny", namespace: "b"}] = 3
	series[seriesKey{constraint: warn, action: "warn", namespace: "a"}] = 4
	recordViolationSeries(series, both, 1, nil)
	if got, want := list(), "deny/deny/=6 warn/warn/=4"; got != want {
		t.Errorf("above the limit: %s, want %s", got, want)
	}
	delete(series, seriesKey{constraint: warn, action: "warn", namespace: "a"})
	recordViolationSeries(series, both, 0, nil)
	if got, want := list(), "deny/deny/=6 warn/warn/=0"; got != want {
		t.Errorf("limit 0, warn fixed: %s, want %s", got, want)
	}
	recordViolationSeries(nil, both, 100, nil)
	if got, want := list(), "deny/deny/=0 warn/warn/=0"; got != want {
		t.Errorf("no violations: %s, want %s", got, want)
	}
	recordViolationSeries(nil, nil, 100, nil)
	if got := list(); got != "" {
		t.Errorf("no constraints: %s, want no series", got)
	}
}
