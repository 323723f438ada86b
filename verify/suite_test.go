package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

func TestReadSuite(t *testing.T) {
	s, err := ReadSuite("s.yaml", []byte(`kind: Suite
apiVersion: test.gatekeeper.sh/v1alpha1
metadata: {name: x}
tests:
- name: t
  template: a.yaml
  constraint: b.yaml
  cases:
  - {name: yes-bool, object: o.yaml, assertions: [{violations: yes}]}
  - {name: no-bool, object: o.yaml, assertions: [{violations: no}]}
  - {name: quoted, object: o.yaml, assertions: [{violations: "yes", message: m}]}
  - {name: number, object: o.yaml, assertions: [{violations: 2}]}
  - {name: default, object: o.yaml, assertions: [{message: m}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"yes", "no", "yes", "2", "<nil>"}
	for i, c := range s.Tests[0].Cases {
		got := "<nil>"
		if v := c.Assertions[0].Violations; v != nil {
			is := intstr.IntOrString(*v)
			got = is.String()
		}
		if got != want[i] {
			t.Errorf("case %s: violations = %s, want %s", c.Name, got, want[i])
		}
	}

	// gator ignores fields it does not know; Portcullis warns of them.
	s, err = ReadSuite("typo.yaml", []byte("kind: Suite\napiVersion: test.gatekeeper.sh/v1\ntestz: []\n"))
	if err != nil || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], `unknown field "testz"`) {
		t.Errorf("unknown field: suite %+v, err %v; want a warning naming testz", s, err)
	}

	for name, bad := range map[string]string{
		"wrong kind": "kind: Other\napiVersion: test.gatekeeper.sh/v1alpha1\n",
		"bad yaml":   "kind: [Suite\n",
		"bad count":  "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests: [{cases: [{assertions: [{violations: [1]}]}]}]\n",
	} {
		if _, err := ReadSuite("bad.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
			t.Errorf("%s: err = %v, want an error naming bad.yaml", name, err)
		}
	}
}

func TestAssertions(t *testing.T) {
	msgs := []string{"container a is bad", "initContainer b is bad"}
	str := func(s string) *string { return &s }
	n := func(s intstr.IntOrString) *Violations { v := Violations(s); return &v }
	tests := []struct {
		name string
		a    Assertion
		ok   bool
	}{
		{"default is yes", Assertion{}, true},
		{"yes with none", Assertion{Violations: n(intstr.FromString("yes")), Message: str("^nothing")}, false},
		{"no with some", Assertion{Violations: n(intstr.FromString("no"))}, false},
		{"no matching", Assertion{Violations: n(intstr.FromString("no")), Message: str("ephemeral")}, true},
		{"exact count", Assertion{Violations: n(intstr.FromInt32(2))}, true},
		{"exact count by regex", Assertion{Violations: n(intstr.FromInt32(1)), Message: str("^container")}, true},
		{"wrong count", Assertion{Violations: n(intstr.FromInt32(3))}, false},
		{"negative count", Assertion{Violations: n(intstr.FromInt32(-1))}, false},
		{"bad word", Assertion{Violations: n(intstr.FromString("maybe"))}, false},
		{"bad regex", Assertion{Message: str("(")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.a.check(msgs)
			if (err == nil) != tc.ok {
				t.Fatalf("check = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestFindSuites(t *testing.T) {
	root := t.TempDir()
	suite := "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\n"
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "suite.yaml"), suite)
	write(filepath.Join(root, "a", "b", "suite.yaml"), suite)
	write(filepath.Join(root, "a", "other.yaml"), "apiVersion: v1\nkind: Pod\n")
	write(filepath.Join(root, "a", "notes.txt"), "{{{ not yaml")

	top, err := FindSuites([]string{root})
	if err != nil || len(top) != 1 {
		t.Fatalf("directory: %d suites, err %v; want 1", len(top), err)
	}
	all, err := FindSuites([]string{root + "/..."})
	if err != nil || len(all) != 2 {
		t.Fatalf("recursive: %d suites, err %v; want 2", len(all), err)
	}
	if all[0].Path != root+"/a/b/suite.yaml" {
		t.Errorf("path = %q, want the argument followed by the file below it", all[1].Path)
	}
	// gator reads every YAML file it finds: one that does not parse is an
	// error naming it.
	write(filepath.Join(root, "a", "broken.yaml"), "{{{ not yaml")
	if _, err := FindSuites([]string{root + "/..."}); err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("broken YAML: err = %v, want one naming broken.yaml", err)
	}
	if _, err := FindSuites([]string{filepath.Join(root, "missing")}); err == nil {
		t.Fatal("missing path: no error")
	}
}

// TestGatekeeperLibrary is the conformance suite: every case of the public
// gatekeeper-library must pass, as it does with Gatekeeper's gator.
func TestGatekeeperLibrary(t *testing.T) {
	lib := testenv.LibraryDir(t)
	suites, err := FindSuites([]string{lib + "/..."})
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{}
	var results []SuiteResult
	for _, s := range suites {
		res := r.RunSuite(context.Background(), s)
		results = append(results, res)
		if res.Failed() {
			var b strings.Builder
			Print(&b, []SuiteResult{res}, false)
			t.Errorf("%s failed:\n%s", s.Path, b.String())
		}
	}
	c := Count(results)
	if c.Suites != 49 || c.Tests != 75 || c.Cases != 270 {
		t.Errorf("ran %d suites, %d tests, %d cases; want 49, 75, 270", c.Suites, c.Tests, c.Cases)
	}
}

// FuzzReadSuite checks the suite reader never panics and that an accepted
// suite has the right kind.
func FuzzReadSuite(f *testing.F) {
	for _, s := range []string{
		"kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests: [{name: t, cases: [{name: c, assertions: [{violations: yes}]}]}]\n",
		"kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests: [{cases: [{assertions: [{violations: 3, message: \"(\"}]}]}]\n",
		"kind: Suite\n",
		"[]",
		"tests: !!binary aGVsbG8=",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ReadSuite("fuzz.yaml", data)
		if err != nil {
			return
		}
		if s.Kind != SuiteKind || !strings.HasPrefix(s.APIVersion, "test.gatekeeper.sh/") {
			t.Fatalf("accepted a %s %s", s.Kind, s.APIVersion)
		}
		for _, tt := range s.Tests {
			for _, c := range tt.Cases {
				for i := range c.Assertions {
					_ = c.Assertions[i].check([]string{"x"})
				}
			}
		}
	})
}

func TestSuiteAbsolutePaths(t *testing.T) {
	abs, err := filepath.Abs("../cli/testdata/suite")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	suite := "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: abs\n  template: " + abs + "/template.yaml\n  constraint: " + abs + "/constraint.yaml\n  cases:\n  - name: bad\n    object: " + abs + "/ns_disallowed.yaml\n    assertions: [{violations: 1}]\n"
	p := filepath.Join(dir, "suite.yaml")
	if err := os.WriteFile(p, []byte(suite), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSuite(p, []byte(suite))
	if err != nil {
		t.Fatal(err)
	}
	res := (&Runner{}).RunSuite(context.Background(), s)
	if res.Failed() {
		var b strings.Builder
		Print(&b, []SuiteResult{res}, true)
		t.Fatalf("suite with absolute paths failed:\n%s", b.String())
	}
}

// FuzzNewFilter checks --run parsing never panics and that a filter it
// returns can be used.
func FuzzNewFilter(f *testing.F) {
	for _, s := range []string{"", "a", "a//b", "//b", "a//", "a//b//c", "(", "a//(", `\`} {
		f.Add(s, "test", "case")
	}
	f.Fuzz(func(t *testing.T, run, test, kase string) {
		flt, err := NewFilter(run)
		if err != nil {
			return
		}
		tt := &Test{Name: test, Cases: []*Case{{Name: kase}}}
		if flt.MatchesCase(test, kase) && !flt.MatchesTest(tt) {
			t.Fatalf("filter %q runs case %q/%q but not its test", run, test, kase)
		}
	})
}

// FuzzIsSuite checks the suite sniffing of FindSuites never panics.
func FuzzIsSuite(f *testing.F) {
	for _, s := range []string{"kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\n", "{{{", "- a\n", "kind: [x]\n", "---\n---\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ok, err := isSuite("fuzz.yaml", data)
		if ok && err != nil {
			t.Fatalf("suite and error %v", err)
		}
	})
}
