package policyreport

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
)

var (
	testPolicies = []Policy{{Name: "K8sA/a", Rule: "k8sa"}, {Name: "K8sB/b", Rule: "k8sb", Category: "B", Severity: v1alpha2.SeverityHigh}}
	testKinds    = []Kind{{APIVersion: "v1", Kind: "ConfigMap"}, {APIVersion: "v1", Kind: "Namespace"}}
)

// testResult is the i-th result of namespace ns.
func testResult(ns string, i int) Result {
	return Result{
		Policy: i % 2, Kind: i % 2, Namespace: ns, Name: fmt.Sprintf("obj-%05d", i), UID: fmt.Sprintf("uid-%d", i),
		Outcome: outcomes[i%len(outcomes)], Message: fmt.Sprintf("message %d ünïcode", i), Action: []string{"", "dryrun"}[i%2],
	}
}

// TestCollectorSpills: results added by concurrent buffers come back by
// namespace, each buffer's in order, whether the store spilled them to
// its file (a budget of 1 KiB) or held them in memory (no writable dir).
func TestCollectorSpills(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dirs      []string
		wantErr   bool
		wantSpill bool
	}{
		{name: "spilled", dirs: []string{t.TempDir()}, wantSpill: true},
		{name: "second dir", dirs: []string{"/nonexistent/dir", t.TempDir()}, wantSpill: true},
		{name: "in memory", dirs: []string{"/nonexistent/dir"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCollector(testPolicies, testKinds, CollectOptions{Dirs: tc.dirs, Budget: 1024})
			if (err != nil) != tc.wantErr {
				t.Fatalf("NewCollector error = %v, want error %v", err, tc.wantErr)
			}
			defer c.Close()
			namespaces := []string{"", "a", "b", "c"}
			const perWorker = 3000
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					buf := c.NewBuffer()
					for i := range perWorker {
						r := testResult(namespaces[i%len(namespaces)], w*perWorker+i)
						buf.Add(&r)
					}
					buf.Flush()
				})
			}
			wg.Wait()
			if err := c.Err(); err != nil {
				t.Fatal(err)
			}
			if got := c.Namespaces(); !slices.Equal(got, namespaces) {
				t.Errorf("Namespaces() = %q, want %q", got, namespaces)
			}
			if spilled := c.Spilled() > 0; spilled != tc.wantSpill {
				t.Errorf("spilled %d bytes, want spilling %v", c.Spilled(), tc.wantSpill)
			}
			total := 0
			for _, ns := range namespaces {
				got, err := c.Results(ns)
				if err != nil {
					t.Fatal(err)
				}
				total += len(got)
				last := map[int]int{} // worker → last index seen
				for _, r := range got {
					var i int
					if _, err := fmt.Sscanf(r.Name, "obj-%05d", &i); err != nil {
						t.Fatalf("name %q: %v", r.Name, err)
					}
					if want := testResult(ns, i); r != want {
						t.Fatalf("result %+v, want %+v", r, want)
					}
					w := i / perWorker
					if prev, ok := last[w]; ok && i <= prev {
						t.Fatalf("namespace %q: worker %d's result %d after %d", ns, w, i, prev)
					}
					last[w] = i
				}
			}
			if total != 4*perWorker {
				t.Errorf("%d results read back, want %d", total, 4*perWorker)
			}
		})
	}
}

// FuzzDecodeResult: any bytes decode to results or errCorrupt, never a
// panic, and digest them or fail; and any result encodes and decodes to
// itself.
func FuzzDecodeResult(f *testing.F) {
	for i := range 5 {
		r := testResult("ns", i)
		f.Add(appendResult(nil, &r), "name", "message", uint8(i))
	}
	f.Add([]byte{0xff, 0xff, 0xff}, "", "", uint8(9))
	// Enough policies and kinds for any code.
	c, _ := NewCollector(make([]Policy, 256), make([]Kind, 3*256), CollectOptions{})
	f.Fuzz(func(t *testing.T, data []byte, name, message string, code uint8) {
		for at := 0; at < len(data); {
			var r Result
			var err error
			if at, err = c.decodeResult(data, string(data), at, &r); err != nil {
				if !errors.Is(err, errCorrupt) {
					t.Fatalf("error %v is not errCorrupt", err)
				}
				break
			}
		}
		c.store.append(map[string][]byte{name: data})
		_, _, _, _ = c.digest(name, nil)
		c.store.ns = map[string]*nsData{}
		in := Result{Policy: int(code), Kind: int(code) * 3, Name: name, UID: message, Message: message,
			Outcome: outcomes[int(code)%len(outcomes)], Action: name}
		var out Result
		enc := appendResult(nil, &in)
		at, err := c.decodeResult(enc, string(enc), 0, &out)
		if err != nil || at != len(enc) || out != in {
			t.Fatalf("round trip of %+v: %+v, at %d of %d, %v", in, out, at, len(enc), err)
		}
	})
}

// TestDigest: a namespace's digest is the same whatever the order its
// results were added in, and changes with any of them.
func TestDigest(t *testing.T) {
	digest := func(rs ...Result) uint64 {
		t.Helper()
		c, _ := NewCollector(testPolicies, testKinds, CollectOptions{})
		b := c.NewBuffer()
		for i := range rs {
			b.Add(&rs[i])
		}
		b.Flush()
		d, n, _, err := c.digest("ns", nil)
		if err != nil || n != len(rs) {
			t.Fatalf("digest: %d results, %v; want %d", n, err, len(rs))
		}
		// The digest is that of the results as built.
		var sum uint64
		results, _ := c.Results("ns")
		for i := range results {
			sum += mix64(hashResult(new(c.result(&results[i]))))
		}
		if want := mix64(sum ^ uint64(len(rs))); d != want {
			t.Fatalf("digest %x, want %x from the results built", d, want)
		}
		// And that of their entries, which the writer remembers.
		entries := make([]entry, len(results))
		for i := range results {
			entries[i] = c.newEntry(&results[i])
		}
		if e := entriesDigest(entries); e != d {
			t.Fatalf("entries' digest %x, want %x", e, d)
		}
		return d
	}
	a, b, c := testResult("ns", 0), testResult("ns", 1), testResult("ns", 2)
	base := digest(a, b, c)
	if digest(c, a, b) != base {
		t.Error("the digest depends on the order of the results")
	}
	changed := c
	changed.Message += "!"
	withAction := c
	withAction.Action = "dryrun"
	for name, d := range map[string]uint64{
		"message": digest(a, b, changed), "action": digest(a, b, withAction), "one less": digest(a, b),
		"duplicate": digest(a, b, c, c), "none": digest(),
	} {
		if d == base {
			t.Errorf("%s: same digest", name)
		}
	}
}

// TestDrop: a dropped policy's results are neither read nor in the
// digest, which is that of the results left.
func TestDrop(t *testing.T) {
	collect := func(drop bool, rs ...Result) *Collector {
		c, _ := NewCollector(testPolicies, testKinds, CollectOptions{})
		b := c.NewBuffer()
		for i := range rs {
			b.Add(&rs[i])
		}
		b.Flush()
		if drop {
			c.Drop(1)
		}
		return c
	}
	r0, r1, r2 := testResult("ns", 0), testResult("ns", 1), testResult("ns", 2) // policies 0, 1, 0
	dropped, left := collect(true, r0, r1, r2), collect(false, r0, r2)
	results, err := dropped.Results("ns")
	if err != nil || len(results) != 2 || results[0].Name != r0.Name || results[1].Name != r2.Name {
		t.Fatalf("results %+v, %v; want those of policy 0", results, err)
	}
	d, n, _, err := dropped.digest("ns", nil)
	want, wantN, _, _ := left.digest("ns", nil)
	if err != nil || d != want || n != wantN {
		t.Errorf("digest %x of %d results (%v), want %x of %d", d, n, err, want, wantN)
	}
	if !dropped.droppedName(testPolicies[1].Name) || dropped.droppedName(testPolicies[0].Name) {
		t.Error("droppedName does not tell the policy dropped")
	}
}

func TestTruncate(t *testing.T) {
	long := strings.Repeat("é", MaxMessageBytes) // 2 bytes each
	got := truncate(long, MaxMessageBytes)
	if len(got) > MaxMessageBytes || !strings.HasSuffix(got, "...") || !utf8.ValidString(got) {
		t.Errorf("truncate: %d bytes, valid UTF-8 %v, suffix %q", len(got), utf8.ValidString(got), got[len(got)-5:])
	}
	if s := "short"; truncate(s, MaxMessageBytes) != s {
		t.Error("a short message was cut")
	}
	c, _ := NewCollector(testPolicies, testKinds, CollectOptions{})
	b := c.NewBuffer()
	r := testResult("ns", 0)
	r.Message = long
	b.Add(&r)
	b.Flush()
	back, err := c.Results("ns")
	if err != nil || len(back) != 1 || back[0].Message != got || r.Message != long {
		t.Errorf("collected message of %d bytes (%v); the caller's result changed: %v", len(back[0].Message), err, r.Message != long)
	}
}
