package templates

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	fwtemplates "github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/verify"
)

// kindPrefix starts the kind of every template in the library.
const kindPrefix = "Pc"

// policyDirs lists the directories holding a template.yaml.
func policyDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(e.Name(), "template.yaml")); err == nil {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) == 0 {
		t.Fatal("no policy directories (DIR/template.yaml) found")
	}
	return dirs
}

// TestSuites runs every suite of the library, as `portcullis verify
// templates/...` does, and fails on any failing test or case.
func TestSuites(t *testing.T) {
	dirs := policyDirs(t)
	suites, err := verify.FindSuites([]string{"./..."})
	if err != nil {
		t.Fatal(err)
	}
	if len(suites) != len(dirs) {
		t.Fatalf("found %d suites for %d policy directories %v; each policy needs exactly one suite.yaml", len(suites), len(dirs), dirs)
	}
	for _, s := range suites {
		if got, want := filepath.Clean(s.Path), filepath.Join(filepath.Dir(filepath.Clean(s.Path)), "suite.yaml"); got != want {
			t.Errorf("suite %s: want it named suite.yaml beside its template", s.Path)
		}
	}

	var runner verify.Runner
	results := make([]verify.SuiteResult, 0, len(suites))
	for _, s := range suites {
		res := runner.RunSuite(context.Background(), s)
		results = append(results, res)
		t.Run(filepath.Dir(s.Path), func(t *testing.T) {
			if res.Skipped {
				t.Fatal("the suite is skipped; the library's suites must all run")
			}
			if len(res.Tests) == 0 {
				t.Fatal("the suite has no tests")
			}
			if res.Failed() {
				var buf bytes.Buffer
				verify.Print(&buf, []verify.SuiteResult{res}, false)
				t.Errorf("suite failed:\n%s", buf.String())
			}
			for _, tr := range res.Tests {
				if tr.Skipped {
					t.Errorf("test %q is skipped", tr.Name)
				}
			}
		})
	}
	c := verify.Count(results)
	t.Logf("%d suites, %d tests, %d cases", c.Suites, c.Tests, c.Cases)
	if c.FailedSuites+c.FailedTests+c.FailedCases > 0 {
		t.Errorf("%d suites, %d tests and %d cases failed", c.FailedSuites, c.FailedTests, c.FailedCases)
	}
}

// TestLayout checks what every policy directory must hold: a template whose
// kind carries the library's prefix and makes a constraint CRD, samples with a constraint and allowed
// and disallowed examples, and a row in README.md.
func TestLayout(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range policyDirs(t) {
		t.Run(dir, func(t *testing.T) {
			ct := readTemplate(t, filepath.Join(dir, "template.yaml"))
			kind := ct.Spec.CRD.Spec.Names.Kind
			if !strings.HasPrefix(kind, kindPrefix) {
				t.Errorf("kind %q does not start with %q", kind, kindPrefix)
			}
			if !bytes.Contains(readme, []byte("`"+kind+"`")) || !bytes.Contains(readme, []byte("("+dir+"/)")) {
				t.Errorf("README.md has no row naming `%s` and linking (%s/)", kind, dir)
			}
			// The manager turns the template into a constraint CRD.
			eng, err := engine.New(engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			crd, err := eng.CreateCRD(context.Background(), ct)
			if err != nil {
				t.Fatalf("creating the constraint CRD: %v", err)
			}
			if want := strings.ToLower(kind) + ".constraints.gatekeeper.sh"; crd.Name != want {
				t.Errorf("constraint CRD %q, want %q", crd.Name, want)
			}
			samples, err := os.ReadDir(filepath.Join(dir, "samples"))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, s := range samples {
				if !s.IsDir() {
					continue
				}
				n++
				for _, f := range []string{"constraint.yaml", "example_allowed.yaml", "example_disallowed.yaml"} {
					if _, err := os.Stat(filepath.Join(dir, "samples", s.Name(), f)); err != nil {
						t.Errorf("sample %s: %v", s.Name(), err)
					}
				}
			}
			if n == 0 {
				t.Error("no samples/<name>/ directory")
			}
		})
	}
}

// TestSharedLibsIdentical checks that a lib package used by several
// templates (each template carries its own copy) is the same everywhere.
func TestSharedLibsIdentical(t *testing.T) {
	type copyOf struct{ dir, src string }
	libs := map[string][]copyOf{}
	for _, dir := range policyDirs(t) {
		ct := readTemplate(t, filepath.Join(dir, "template.yaml"))
		for _, lib := range ct.Spec.Targets[0].Libs {
			pkg := packageOf(lib)
			if !strings.HasPrefix(pkg, "lib.portcullis.") {
				t.Errorf("%s: lib package %q, want lib.portcullis.*", dir, pkg)
			}
			libs[pkg] = append(libs[pkg], copyOf{dir, lib})
		}
	}
	pkgs := make([]string, 0, len(libs))
	for pkg := range libs {
		pkgs = append(pkgs, pkg)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		copies := libs[pkg]
		for _, c := range copies[1:] {
			if c.src != copies[0].src {
				t.Errorf("lib %s differs between %s and %s; keep the copies identical", pkg, copies[0].dir, c.dir)
			}
		}
	}
}

func readTemplate(t *testing.T, path string) *fwtemplates.ConstraintTemplate {
	t.Helper()
	docs, err := manifest.ReadPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%s: want one object, got %d", path, len(docs))
	}
	ct, err := engine.ParseTemplate(docs[0].Object)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func packageOf(src string) string {
	for line := range strings.SplitSeq(src, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "package "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}
