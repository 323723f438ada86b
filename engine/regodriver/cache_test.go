package regodriver_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/engine/regodriver"
)

// variants returns input.reviews that differ from the object's in what
// templates commonly read, and in what they commonly do not: the name and
// uid of the object, a label, the operation, a container image, a
// namespace.
func variants(t *testing.T, u *unstructured.Unstructured) []map[string]any {
	t.Helper()
	base := reviewOf(u)
	out := []map[string]any{base}
	vary := func(f func(r map[string]any, o map[string]any)) {
		r := runtime.DeepCopyJSON(base)
		o, _ := r["object"].(map[string]any)
		if o == nil {
			return
		}
		f(r, o)
		out = append(out, r)
	}
	vary(func(r, o map[string]any) {
		_ = unstructured.SetNestedField(o, "renamed-7f9c", "metadata", "name")
		_ = unstructured.SetNestedField(o, "0c2a4e6f-aaaa-bbbb-cccc-000000000001", "metadata", "uid")
		r["name"] = "renamed-7f9c"
	})
	vary(func(_, o map[string]any) {
		_ = unstructured.SetNestedField(o, "added", "metadata", "labels", "cache-test")
	})
	vary(func(r, o map[string]any) {
		r["operation"] = "UPDATE"
		r["oldObject"] = runtime.DeepCopyJSONValue(o)
	})
	vary(func(r, o map[string]any) {
		r["namespace"] = "elsewhere"
		_ = unstructured.SetNestedField(o, "elsewhere", "metadata", "namespace")
	})
	vary(func(_, o map[string]any) {
		for _, path := range [][]string{{"spec", "containers"}, {"spec", "template", "spec", "containers"}} {
			cs, found, _ := unstructured.NestedSlice(o, path...)
			if found && len(cs) > 0 {
				if c, ok := cs[0].(map[string]any); ok {
					c["image"] = "evil.example.com/x:latest"
					c["securityContext"] = map[string]any{"privileged": true, "runAsUser": int64(0)}
				}
				_ = unstructured.SetNestedSlice(o, cs, path...)
			}
		}
	})
	vary(func(_, o map[string]any) {
		if spec, ok := o["spec"].(map[string]any); ok {
			for k := range spec {
				delete(spec, k)
				break
			}
		}
	})
	return out
}

// cacheDifferential reviews every variant of every library sample object
// against every library constraint with the cached driver, twice, and
// returns the reviews whose results differ from the uncached driver's.
func cacheDifferential(t *testing.T, lib *library, constraints []*unstructured.Unstructured, cached, uncached drivers.Driver) []string {
	t.Helper()
	ctx := context.Background()
	var inputs []map[string]any
	var names []string
	for i, u := range lib.objects {
		for j, r := range variants(t, u) {
			inputs = append(inputs, r)
			names = append(names, fmt.Sprintf("%s %s variant %d", lib.files[i], u.GetName(), j))
		}
	}
	var diffs []string
	check := func(i int) {
		var opts []reviews.ReviewOpt
		if i%3 == 0 {
			opts = append(opts, reviews.Namespace(map[string]any{
				"apiVersion": "v1", "kind": "Namespace",
				"metadata": map[string]any{"name": "ns", "labels": map[string]any{"n": fmt.Sprint(i % 2)}},
			}))
		}
		gotResp, gotErr := cached.Query(ctx, engine.TargetName, constraints, inputs[i], opts...)
		wantResp, wantErr := uncached.Query(ctx, engine.TargetName, constraints, inputs[i], opts...)
		if (gotErr == nil) != (wantErr == nil) {
			diffs = append(diffs, fmt.Sprintf("%s: error %v, uncached %v", names[i], gotErr, wantErr))
			return
		}
		got, want := canonical(t, gotResp), canonical(t, wantResp)
		if !reflect.DeepEqual(got, want) {
			diffs = append(diffs, fmt.Sprintf("%s:\n got %s\nwant %s", names[i], strings.Join(got, "\n     "), strings.Join(want, "\n     ")))
		}
	}
	for i := range inputs {
		check(i)
	}
	for i := range slices.Backward(inputs) {
		check(i)
	}
	return diffs
}

func libraryDrivers(t *testing.T, lib *library) (cached, uncached *regodriver.Driver) {
	t.Helper()
	cached, uncached = newDriver(t), newDriver(t, regodriver.CacheSize(0))
	for _, d := range []*regodriver.Driver{cached, uncached} {
		for _, ct := range lib.templates {
			mustAdd(t, d, ct)
		}
		for _, c := range lib.constraints {
			if err := d.AddConstraint(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
	}
	return cached, uncached
}

// TestResultCacheMatchesUncached: with the cache, every library template
// gives exactly the results it gives without, on the library's samples
// and on variants of them, reviewed in an order that makes each variant
// meet the cached results of the others.
func TestResultCacheMatchesUncached(t *testing.T) {
	lib := loadLibrary(t)
	cached, uncached := libraryDrivers(t, lib)
	for _, d := range cacheDifferential(t, lib, lib.constraints, cached, uncached) {
		t.Error(d)
	}
	st := cached.CacheStats()
	t.Logf("cache: %d hits, %d misses, %d entries", st.Hits, st.Misses, st.Entries)
	if st.Hits == 0 || st.Misses == 0 {
		t.Errorf("the test needs both hits and misses: %+v", st)
	}
	if st := uncached.CacheStats(); st != (regodriver.CacheStats{}) {
		t.Errorf("CacheSize(0) still caches: %+v", st)
	}
}

// TestResultCacheDifferentialCatchesBadKeys shows the differential test
// above can fail: keyed by nothing but the constraint, a template's cached
// results are wrong for other objects, and the comparison says so.
func TestResultCacheDifferentialCatchesBadKeys(t *testing.T) {
	lib := loadLibrary(t)
	cached, uncached := libraryDrivers(t, lib)
	if !regodriver.ForgetReads(cached, engine.TargetName, "K8sPSPPrivilegedContainer") {
		t.Fatal("K8sPSPPrivilegedContainer not held")
	}
	var privileged []*unstructured.Unstructured
	for _, c := range lib.constraints {
		if c.GetKind() == "K8sPSPPrivilegedContainer" {
			privileged = append(privileged, c)
		}
	}
	diffs := cacheDifferential(t, lib, privileged, cached, uncached)
	if len(diffs) == 0 {
		t.Fatal("a cache keyed by nothing went unnoticed")
	}
	if !strings.Contains(diffs[0], "K8sPSPPrivilegedContainer") {
		t.Errorf("the difference is not the broken template's:\n%s", diffs[0])
	}
}

// TestResultCacheInvalidation: a new compilation of the template, new
// parameters and new data each give fresh results for the same review.
func TestResultCacheInvalidation(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	const kind = "K8sRequiredLabels"
	mustAdd(t, d, tmpl{kind: kind, rego: requiredLabelsRego}.build(), constraint(kind, "c", obj{"labels": []any{"a"}}))
	cs := []*unstructured.Unstructured{constraint(kind, "c", nil)}
	r := review("p", obj{"b": "1"})
	first := query(t, d, cs, r)
	if len(first) != 1 || !equal(query(t, d, cs, r), first) {
		t.Fatalf("results %v then a different set", first)
	}
	if st := d.CacheStats(); st.Hits != 1 {
		t.Fatalf("the second review was not a cache hit: %+v", st)
	}
	if err := d.AddConstraint(ctx, constraint(kind, "c", obj{"labels": []any{"b"}})); err != nil {
		t.Fatal(err)
	}
	if got := query(t, d, cs, r); len(got) != 0 {
		t.Fatalf("new parameters, old results: %v", got)
	}
	mustAdd(t, d, tmpl{kind: kind, rego: strings.Replace(requiredLabelsRego, "missing labels", "labels missing", 1)}.build())
	if err := d.AddConstraint(ctx, constraint(kind, "c", obj{"labels": []any{"a"}})); err != nil {
		t.Fatal(err)
	}
	got := query(t, d, cs, r)
	if len(got) != 1 || !strings.Contains(got[0], "labels missing") {
		t.Fatalf("recompiled template, results %v", got)
	}
}
