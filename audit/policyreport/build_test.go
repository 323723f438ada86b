package policyreport

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
)

var testCollector = &Collector{policies: testPolicies, kinds: testKinds}

func testEntries(t *testing.T, n int, message string) []entry {
	t.Helper()
	out := make([]entry, 0, n)
	for i := range n {
		r := testResult("ns", i)
		if message != "" {
			r.Message = message
		}
		out = append(out, testCollector.newEntry(&r))
	}
	testCollector.sortEntries(out)
	return out
}

// TestSplit: reports hold at most maxResults results and about
// MaxReportBytes; they are named portcullis-audit, -2, -3 and count their
// own results.
func TestSplit(t *testing.T) {
	parts := split(testEntries(t, 2500, ""), 1000)
	if len(parts) != 3 {
		t.Fatalf("%d reports, want 3", len(parts))
	}
	total := 0
	for i, p := range parts {
		if want := []string{"portcullis-audit", "portcullis-audit-2", "portcullis-audit-3"}[i]; p.name != want {
			t.Errorf("report %d is %q, want %q", i, p.name, want)
		}
		s := p.summary
		if n := s.Pass + s.Fail + s.Warn + s.Error + s.Skip; n != len(p.entries) {
			t.Errorf("%s: summary counts %d of %d results", p.name, n, len(p.entries))
		}
		total += len(p.entries)
	}
	if total != 2500 || len(parts[2].entries) != 500 {
		t.Errorf("results %d, last report %d", total, len(parts[2].entries))
	}

	big := strings.Repeat("x", 10<<10)
	parts = split(testEntries(t, 300, big), 1000)
	for _, p := range parts {
		size := 0
		for _, e := range p.entries {
			size += e.size
		}
		if size > MaxReportBytes {
			t.Errorf("%s holds %d bytes of results, more than %d", p.name, size, MaxReportBytes)
		}
		// The estimate bounds the JSON.
		b, err := WGPolicy.encode("ns", p.name, nil, nil, p.summary, p.results(testCollector, nil, metav1.Timestamp{Seconds: 1}))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > size+1024 {
			t.Errorf("%s: %d bytes of JSON, estimated %d", p.name, len(b), size)
		}
	}
	if len(parts) < 3 {
		t.Errorf("300 results of 10 KiB make %d reports", len(parts))
	}
	if got := split(nil, 1000); len(got) != 0 {
		t.Errorf("no results make %d reports", len(got))
	}
}

// TestHash: a report's hash depends on its results, not on their
// timestamps; timestamps are kept for the same results.
func TestHash(t *testing.T) {
	es := testEntries(t, 10, "")
	a := newPart(0, es)
	if b := newPart(0, testEntries(t, 10, "")); a.hash != b.hash {
		t.Error("the same results hash differently")
	}
	changed := testEntries(t, 10, "")
	r := *changed[3].new
	r.Message += "!"
	changed[3] = testCollector.newEntry(&r)
	if b := newPart(0, changed); a.hash == b.hash {
		t.Error("a changed message keeps the hash")
	}
	if newPart(0, es[:9]).hash == a.hash || emptyHash == a.hash {
		t.Error("fewer results keep the hash")
	}
	then, now := metav1.Timestamp{Seconds: 100}, metav1.Timestamp{Seconds: 200}
	old := a.results(testCollector, nil, then)
	stamps := map[uint64]metav1.Timestamp{}
	for i := range old[:5] {
		stamps[hashResult(&old[i])] = old[i].Timestamp
	}
	for i, r := range a.results(testCollector, stamps, now) {
		want := now
		if i < 5 {
			want = then
		}
		if r.Timestamp != want {
			t.Errorf("result %d has timestamp %v, want %v", i, r.Timestamp, want)
		}
	}
}

// TestEncode: a PolicyReport and an openreports.io Report of the same
// results differ in apiVersion, kind and the Report's top-level source.
func TestEncode(t *testing.T) {
	p := newPart(0, testEntries(t, 2, ""))
	results := p.results(testCollector, nil, metav1.Timestamp{Seconds: 1})
	for _, tc := range []struct {
		api        API
		ns         string
		apiVersion string
		kind       string
		source     bool
	}{
		{WGPolicy, "ns", "wgpolicyk8s.io/v1alpha2", "PolicyReport", false},
		{WGPolicy, "", "wgpolicyk8s.io/v1alpha2", "ClusterPolicyReport", false},
		{OpenReports, "ns", "openreports.io/v1alpha1", "Report", true},
		{OpenReports, "", "openreports.io/v1alpha1", "ClusterReport", true},
	} {
		b, err := tc.api.encode(tc.ns, p.name, map[string]string{LabelManagedBy: ManagedBy}, nil, p.summary, results)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got["apiVersion"] != tc.apiVersion || got["kind"] != tc.kind {
			t.Errorf("%s: apiVersion %v, kind %v", tc.kind, got["apiVersion"], got["kind"])
		}
		if _, ok := got["source"]; ok != tc.source {
			t.Errorf("%s: top-level source present %v", tc.kind, ok)
		}
		var back v1alpha2.PolicyReport
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Results) != 2 || back.Results[0].Policy != results[0].Policy || back.Results[1].Subjects[0].Name != results[1].Subjects[0].Name ||
			back.Summary != p.summary {
			t.Errorf("%s: results %+v, summary %+v", tc.kind, back.Results, back.Summary)
		}
	}
}

// TestOldEntries: a result kept from a report hashes, sorts and encodes as
// the collected result it was made of.
func TestOldEntries(t *testing.T) {
	fresh := testEntries(t, 20, "")
	kept := make([]entry, len(fresh))
	for i := range fresh {
		r := testCollector.result(fresh[len(fresh)-1-i].new)
		kept[i] = oldEntry(&r)
	}
	testCollector.sortEntries(kept)
	now := metav1.Timestamp{Seconds: 5}
	a, b := newPart(0, fresh), newPart(0, kept)
	if a.hash != b.hash {
		t.Errorf("kept results hash to %s, collected ones to %s", b.hash, a.hash)
	}
	ra, rb := a.results(testCollector, nil, now), b.results(testCollector, nil, now)
	for i := range ra {
		if hashResult(&ra[i]) != hashResult(&rb[i]) || ra[i].Timestamp != rb[i].Timestamp {
			t.Fatalf("result %d: %+v vs %+v", i, ra[i], rb[i])
		}
	}
}

// TestHashCollected: the hash and size estimate of a collected result
// without building it equal those of the result built.
func TestHashCollected(t *testing.T) {
	for i := range 10 {
		r := testResult("ns", i)
		full := testCollector.result(&r)
		if got, want := testCollector.hashCollected(&r), hashResult(&full); got != want {
			t.Errorf("result %d: hashCollected %x, hashResult %x", i, got, want)
		}
		if got, want := testCollector.estimateCollected(&r), estimate(&full); got != want {
			t.Errorf("result %d: estimateCollected %d, estimate %d", i, got, want)
		}
	}
}
