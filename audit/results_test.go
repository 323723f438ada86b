package audit

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"unicode/utf8"
)

func violation(ns, name, msg string) *StatusViolation {
	return &StatusViolation{Version: "v1", Kind: "Pod", Namespace: ns, Name: name, Message: msg, EnforcementAction: "deny"}
}

// TestTopNDeterministic: whatever order violations arrive in, and however
// they are split between workers, the same subset is kept, in order.
func TestTopNDeterministic(t *testing.T) {
	var all []*StatusViolation
	for i := range 200 {
		all = append(all, violation(fmt.Sprintf("ns-%02d", i%7), fmt.Sprintf("pod-%03d", i), "msg"))
	}
	var want []StatusViolation
	for run := range 20 {
		rng := rand.New(rand.NewSource(int64(run)))
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		workers := 1 + run%4
		parts := make([]*tally, workers)
		for i := range parts {
			parts[i] = newTally(5)
		}
		for i, v := range all {
			parts[i%workers].add(v)
		}
		total := newTally(5)
		for _, p := range parts {
			total.merge(p)
		}
		if total.total != 200 {
			t.Fatalf("total %d, want 200", total.total)
		}
		got := total.top.sorted()
		if len(got) != 5 {
			t.Fatalf("kept %d, want 5", len(got))
		}
		if want == nil {
			want = got
			continue
		}
		for i := range got {
			if got[i].key() != want[i].key() {
				t.Fatalf("run %d kept %v, want %v", run, got, want)
			}
		}
	}
	if want[0].Namespace != "ns-00" || want[0].Name != "pod-000" || want[1].Name != "pod-007" {
		t.Errorf("kept %v, want the first in group/version/kind/namespace/name order", want)
	}
}

func TestLessViolationOrder(t *testing.T) {
	base := StatusViolation{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "a", Name: "a", Message: "a", EnforcementAction: "deny"}
	fields := []func(*StatusViolation){
		func(v *StatusViolation) { v.Group = "batch" },
		func(v *StatusViolation) { v.Version = "v2" },
		func(v *StatusViolation) { v.Kind = "ReplicaSet" },
		func(v *StatusViolation) { v.Namespace = "b" },
		func(v *StatusViolation) { v.Name = "b" },
		func(v *StatusViolation) { v.Message = "b" },
		func(v *StatusViolation) { v.EnforcementAction = "warn" },
	}
	for i, bigger := range fields {
		b := base
		bigger(&b)
		// A later field never outweighs an earlier one.
		for _, smaller := range fields[i+1:] {
			a := base
			smaller(&a)
			if !lessViolation(&a, &b) {
				t.Errorf("field %d should decide before later fields: %+v !< %+v", i, a, b)
			}
		}
		if !lessViolation(&base, &b) || lessViolation(&b, &base) {
			t.Errorf("field %d: order wrong", i)
		}
	}
	if lessViolation(&base, &base) {
		t.Error("a violation is less than itself")
	}
}

func TestTopNZeroLimit(t *testing.T) {
	tl := newTally(0)
	tl.add(violation("a", "b", "c"))
	if tl.total != 1 || len(tl.top.sorted()) != 0 {
		t.Errorf("limit 0: total %d, kept %d; want 1 and 0", tl.total, len(tl.top.sorted()))
	}
}

func TestTruncateMessage(t *testing.T) {
	if got := truncateMessage("short"); got != "short" {
		t.Errorf("short message changed: %q", got)
	}
	exact := strings.Repeat("x", MaxMessageLength)
	if got := truncateMessage(exact); got != exact {
		t.Error("a message of exactly the limit was cut")
	}
	long := strings.Repeat("x", 1000)
	got := truncateMessage(long)
	if len(got) != MaxMessageLength || !strings.HasSuffix(got, "...") {
		t.Errorf("cut message has %d bytes (want %d) and ends %q", len(got), MaxMessageLength, got[len(got)-5:])
	}
	// Multi-byte runes are not split.
	runes := strings.Repeat("é", 300)
	got = truncateMessage(runes)
	if len(got) > MaxMessageLength || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Errorf("cut multi-byte message: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}
