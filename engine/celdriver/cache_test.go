package celdriver_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
)

// TestReads: what the read-set analyser finds a template reads, and the
// templates it does not cache.
func TestReads(t *testing.T) {
	for _, tc := range []struct {
		name, source string
		want         []string
	}{{
		name: "selections through variables, both branches of anyObject",
		source: `
variables:
- name: containers
  expression: 'has(variables.anyObject.spec.containers) ? variables.anyObject.spec.containers : []'
validations:
- expression: 'variables.containers.all(c, c.image != "bad")'
  messageExpression: '"pod " + object.metadata.name'`,
		// The built-in params variable is not used: its reads are only
		// of has().
		want: []string{"object == null", "object.metadata.name", "object.spec.containers", "oldObject.spec.containers",
			"has(params.spec)", "has(params.spec.parameters)", "request.operation"},
	}, {
		name: "has() and null tests read only that; a whole read covers them",
		source: `
validations:
- expression: 'has(object.metadata.labels) && object.metadata.annotations != null && object.spec.x == 1'
- expression: 'has(object.spec.y) && size(object.spec) > 0'
- expression: 'variables.params == null || variables.params.n > 0'`,
		want: []string{"object == null", "has(object.metadata.labels)", "object.metadata.annotations == null", "object.spec",
			"has(params.spec)", "has(params.spec.parameters)", "params.spec.parameters == null", "params.spec.parameters.n", "request.operation"},
	}, {
		name: "constant indexes and optional selections select; other indexes read whole",
		source: `
validations:
- expression: 'object["metadata"].?labels.orValue({}).size() > 0 && object.spec.containers[0].name != "x"'`,
		want: []string{"object == null", "object.metadata.labels", "object.spec.containers",
			"has(params.spec)", "has(params.spec.parameters)", "request.operation"},
	}, {
		name:   "request as a whole",
		source: "validations:\n- expression: '[request].size() > 0'",
		want:   []string{"not cached: reads request as a whole"},
	}, {
		name:   "variables as a whole",
		source: "validations:\n- expression: '[variables].size() > 0'",
		want:   []string{"not cached: reads variables as a whole"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := celdriver.Reads(template(t, tc.source, false))
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(tc.want)
			if !strings.HasPrefix(want[0], "not cached") {
				slices.Sort(want)
				slices.Sort(got)
			}
			if !slices.Equal(got, want) {
				t.Errorf("reads:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

// cacheVariants are admission requests for a library object that differ
// from its CREATE in what templates commonly read and in what they
// commonly do not: its name and uid, a label, an UPDATE and a DELETE, its
// namespace, a container's image and securityContext, the namespace's
// labels.
func cacheVariants(t *testing.T, u *unstructured.Unstructured) []*request {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"team": "a"}}}
	base := runtime.DeepCopyJSON(u.Object)
	out := libraryReviews(t, u, ns)
	vary := func(op admissionv1.Operation, withOld bool, f func(o obj)) {
		o := runtime.DeepCopyJSON(base)
		f(o)
		r := admissionFor(t, op, o, nil)
		if withOld {
			r = admissionFor(t, op, o, base)
		}
		r.ns = ns
		out = append(out, r)
	}
	vary(admissionv1.Create, false, func(o obj) {
		_ = unstructured.SetNestedField(o, "renamed-7f9c", "metadata", "name")
		_ = unstructured.SetNestedField(o, "0c2a4e6f-aaaa-bbbb-cccc-000000000001", "metadata", "uid")
	})
	vary(admissionv1.Create, false, func(o obj) { _ = unstructured.SetNestedField(o, "added", "metadata", "labels", "cache-test") })
	vary(admissionv1.Update, true, func(o obj) { _ = unstructured.SetNestedField(o, "changed", "metadata", "labels", "cache-test") })
	vary(admissionv1.Create, false, func(o obj) { _ = unstructured.SetNestedField(o, "elsewhere", "metadata", "namespace") })
	vary(admissionv1.Create, false, func(o obj) {
		for _, path := range [][]string{{"spec", "containers"}, {"spec", "template", "spec", "containers"}} {
			cs, found, _ := unstructured.NestedSlice(o, path...)
			if found && len(cs) > 0 {
				if c, ok := cs[0].(obj); ok {
					c["image"] = "evil.example.com/x:latest"
					c["securityContext"] = obj{"privileged": true, "runAsUser": int64(0), "allowPrivilegeEscalation": true}
				}
				_ = unstructured.SetNestedSlice(o, cs, path...)
			}
		}
	})
	other := ns.DeepCopy()
	other.Labels = map[string]string{"team": "b"}
	r := admissionFor(t, admissionv1.Create, base, nil)
	r.ns = other
	return append(out, r)
}

// TestResultCacheMatchesUncached: for every library template with CEL,
// each of its sample constraints, and each sample object in many variants
// (cacheVariants), a driver with the result cache, asked each review
// twice, gives what a driver without it gives; and variants that differ
// only in what a template does not read are taken from the cache.
func TestResultCacheMatchesUncached(t *testing.T) {
	ctx := context.Background()
	cached, uncached := celdriver.New(celdriver.CacheSize(100000)), celdriver.New()
	constraints, objects := celLibrary(t, cached, uncached)
	var reviews []*request
	for _, o := range objects {
		if o.GetKind() != "AdmissionReview" {
			reviews = append(reviews, cacheVariants(t, o)...)
		}
	}
	compared := 0
	for i, r := range reviews {
		want, err := uncached.Query(ctx, testTarget, constraints, r)
		if err != nil {
			t.Fatal(err)
		}
		for pass := range 2 {
			got, err := cached.Query(ctx, testTarget, constraints, r)
			if err != nil {
				t.Fatal(err)
			}
			g, w := strings.Join(resultLines(got.Results), "\n"), strings.Join(resultLines(want.Results), "\n")
			if g != w {
				t.Errorf("review %d (%s %s), pass %d, with the cache:\n%s\nwithout:\n%s", i, r.req.Operation, r.req.Name, pass, g, w)
			}
			compared += len(want.Results)
		}
	}
	st := cached.CacheStats()
	t.Logf("%d reviews, %d results compared; cache: %d hits, %d misses, %d entries", len(reviews), compared, st.Hits, st.Misses, st.Entries)
	if compared < 1000 {
		t.Errorf("only %d results compared: is the library complete?", compared)
	}
	// Every review's second pass hits; the first passes of variants hit
	// too when the template does not read what varies.
	if total := uint64(len(reviews) * len(constraints)); st.Hits < total+total/10 {
		t.Errorf("%d hits for %d reviews of %d constraints twice: the variants never share results", st.Hits, len(reviews), len(constraints))
	}
	if st := uncached.CacheStats(); st.Hits+st.Misses != 0 || st.Entries != 0 {
		t.Errorf("a driver without a cache counts %+v", st)
	}
}

// TestResultCacheKeys: a result is reused exactly when what the template
// reads is equal: not across constraints' parameters, a recompiled
// template, nor a changed value it reads; yes across what it does not read.
func TestResultCacheKeys(t *testing.T) {
	ctx := context.Background()
	src := `
validations:
- expression: 'variables.anyObject.spec.containers.all(c, !(c.image in variables.params.banned))'
  messageExpression: '"banned image in " + variables.anyObject.metadata.namespace'`
	d := celdriver.New(celdriver.CacheSize(16))
	ct := template(t, src, false)
	if err := d.AddTemplate(ctx, ct); err != nil {
		t.Fatal(err)
	}
	banNginx := constraint("ban-nginx", obj{"banned": []any{"nginx"}})
	banOther := constraint("ban-other", obj{"banned": []any{"other"}})
	ask := func(name string, c *unstructured.Unstructured, o obj) string {
		t.Helper()
		resp, err := d.Query(ctx, testTarget, []*unstructured.Unstructured{c}, admissionFor(t, admissionv1.Create, o, nil))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s: %s", name, strings.Join(resultLines(resp.Results), "; "))
	}
	renamed := pod("q", obj{"x": "y"})
	elsewhere := pod("p", nil)
	elsewhere["metadata"].(obj)["namespace"] = "other"
	steps := []struct{ got, want string }{
		{ask("first", banNginx, pod("p", nil)), "first: K ban-nginx: banned image in default"},
		{ask("renamed and labeled", banNginx, renamed), "renamed and labeled: K ban-nginx: banned image in default"},
		{ask("other parameters", banOther, pod("p", nil)), "other parameters: "},
		{ask("other namespace", banNginx, elsewhere), "other namespace: K ban-nginx: banned image in other"},
	}
	for i, s := range steps {
		if s.got != s.want {
			t.Errorf("step %d: %q, want %q", i, s.got, s.want)
		}
	}
	if st := d.CacheStats(); st.Hits != 1 || st.Hits+st.Misses != 4 {
		t.Errorf("cache %+v, want 1 hit in 4", st)
	}
	// has() and null tests: what they read is keyed too.
	tests := celdriver.New(celdriver.CacheSize(16))
	ct2 := template(t, `
validations:
- expression: '!has(object.metadata.annotations)'
  message: annotated
- expression: 'object.spec.nodeName == null'
  message: scheduled`, false)
	ct2.Spec.CRD.Spec.Names.Kind = "K"
	if err := tests.AddTemplate(ctx, ct2); err != nil {
		t.Fatal(err)
	}
	plain, annotated, scheduled := pod("p", nil), pod("p", nil), pod("p", nil)
	plain["spec"].(obj)["nodeName"], annotated["spec"].(obj)["nodeName"] = nil, nil
	annotated["metadata"].(obj)["annotations"] = obj{"a": "b"}
	scheduled["spec"].(obj)["nodeName"] = "node-1"
	for _, tc := range []struct {
		o    obj
		want string
	}{{plain, ""}, {annotated, "K c: annotated"}, {scheduled, "K c: scheduled"}, {plain, ""}} {
		resp, err := tests.Query(ctx, testTarget, []*unstructured.Unstructured{constraint("c", nil)}, admissionFor(t, admissionv1.Create, tc.o, nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(resultLines(resp.Results), "; "); got != tc.want {
			t.Errorf("has() and null tests: %q, want %q", got, tc.want)
		}
	}
	if st := tests.CacheStats(); st.Hits != 1 {
		t.Errorf("has() and null tests: cache %+v, want 1 hit (the plain pod asked again)", st)
	}

	// The template compiled again: its results are its own.
	if err := d.AddTemplate(ctx, ct); err != nil {
		t.Fatal(err)
	}
	ask("recompiled", banNginx, pod("p", nil))
	if st := d.CacheStats(); st.Hits != 1 {
		t.Errorf("a recompiled template took a result of the one it replaced: %+v", st)
	}
}
