package celdriver_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/verify"
)

// libraryDir is the gatekeeper-library checkout beside this repository.
const libraryDir = "../../../shared/gatekeeper-library/library"

// libraryGolden holds, for every case of every gatekeeper-library suite
// whose template carries K8sNativeValidation code, the results Gatekeeper
// gives with its default --enable-k8s-native-validation=true: one line
// per violation, "[constraint] message (action)", in result order. They
// are the templates' CEL messages (messageExpression, else message, else
// "failed expression: ..."), one per failed validation, reviewed at the
// gator enforcement point as `gator verify` reviews them.
const libraryGolden = "testdata/library.golden"

var update = flag.Bool("update", false, "rewrite "+libraryGolden+" from the results")

// TestLibraryCEL reviews every case of the gatekeeper-library suites whose
// template has CEL, with the CEL first (the default), and compares the
// results with libraryGolden; with --enable-k8s-native-validation=false
// the same cases must run the Rego and give other messages.
func TestLibraryCEL(t *testing.T) {
	if _, err := os.Stat(libraryDir); err != nil {
		if testenv.InCI() {
			t.Fatalf("gatekeeper-library not found at %s, and CI is set: %v", libraryDir, err)
		}
		t.Skipf("gatekeeper-library not found at %s (it is expected in ../shared beside the repository): %v", libraryDir, err)
	}
	suites, err := verify.FindSuites([]string{libraryDir + "/..."})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	templates, cases, violations := 0, 0, 0
	celTemplates := map[string]bool{}
	differ := map[string]bool{} // templates whose Rego gives other results on some case
	for _, s := range suites {
		dir := filepath.Dir(s.Path)
		rel, _ := filepath.Rel(libraryDir, dir)
		for _, test := range s.Tests {
			ct := readTemplate(t, filepath.Join(dir, test.Template))
			if !engine.HasCode(ct, engine.EngineCEL) {
				continue
			}
			celTemplates[ct.GetName()] = true
			cel := newLibraryEngine(t, engine.Options{EnforcementPoints: []string{engine.EnforcementPointGator}}, dir, &test)
			rego := newLibraryEngine(t, engine.Options{EnforcementPoints: []string{engine.EnforcementPointGator}, DisableK8sNativeValidation: true}, dir, &test)
			if got := cel.TemplateEngine(ct.Spec.CRD.Spec.Names.Kind); got != engine.EngineCEL {
				t.Errorf("%s: engine %q, want CEL", ct.GetName(), got)
			}
			for _, c := range test.Cases {
				cases++
				in := reviewInput(t, filepath.Join(dir, c.Object))
				got := results(t, cel, in)
				violations += len(got)
				key := fmt.Sprintf("%s/%s/%s", filepath.ToSlash(rel), test.Name, c.Name)
				if len(got) == 0 {
					lines = append(lines, key+": no violations")
				}
				for _, g := range got {
					lines = append(lines, key+": "+g)
				}
				// The Rego of the same template gives its own messages
				// (for most cases): proof that the CEL, not the Rego, ran.
				if regoGot := results(t, rego, in); strings.Join(regoGot, "\n") != strings.Join(got, "\n") {
					differ[ct.GetName()] = true
				}
			}
		}
	}
	templates = len(celTemplates)
	// 5 templates' CEL and Rego give the very same messages; the other
	// 11 differ somewhere (messages, or one result per container against
	// one joined result).
	if len(differ) < 11 {
		t.Errorf("only %d templates give other results with their Rego: is the CEL running?", len(differ))
	}
	if templates != 16 {
		t.Errorf("%d library templates with CEL, want 16", templates)
	}
	t.Logf("%d templates with CEL, %d cases, %d violations", templates, cases, violations)
	out := strings.Join(lines, "\n") + "\n"
	if *update {
		if err := os.WriteFile(libraryGolden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(libraryGolden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestLibraryCEL -update to create it)", err)
	}
	if diff := lineDiff(string(want), out); diff != "" {
		t.Errorf("results differ from %s (- want, + got):\n%s", libraryGolden, diff)
	}
}

func readTemplate(t *testing.T, path string) *templates.ConstraintTemplate {
	t.Helper()
	docs, err := manifest.ReadPath(path, nil)
	if err != nil || len(docs) != 1 {
		t.Fatalf("%s: %v (%d documents)", path, err, len(docs))
	}
	ct, err := engine.ParseTemplate(docs[0].Object)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ct
}

func newLibraryEngine(t *testing.T, opts engine.Options, dir string, test *verify.Test) *engine.Engine {
	t.Helper()
	e, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.AddTemplate(ctx, readTemplate(t, filepath.Join(dir, test.Template))); err != nil {
		t.Fatalf("%s: %v", test.Template, err)
	}
	docs, err := manifest.ReadPath(filepath.Join(dir, test.Constraint), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := e.AddConstraint(ctx, d.Object); err != nil {
			t.Fatalf("%s: %v", d.Source, err)
		}
	}
	return e
}

func reviewInput(t *testing.T, path string) engine.ReviewInput {
	t.Helper()
	docs, err := manifest.ReadPath(path, nil)
	if err != nil || len(docs) != 1 {
		t.Fatalf("%s: %v (%d documents)", path, err, len(docs))
	}
	u := docs[0].Object
	if gvk := u.GroupVersionKind(); gvk.Kind != "AdmissionReview" || gvk.Group != admissionv1.GroupName {
		return &engine.Object{Object: u, Source: engine.SourceOriginal}
	}
	var ar admissionv1.AdmissionReview
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ar); err != nil || ar.Request == nil {
		t.Fatalf("%s: not an AdmissionReview with a request: %v", path, err)
	}
	return &engine.Admission{Request: ar.Request, Source: engine.SourceOriginal}
}

func results(t *testing.T, e *engine.Engine, in engine.ReviewInput) []string {
	t.Helper()
	resp, err := e.Review(context.Background(), in, engine.EnforcementPointGator)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(resp.Violations))
	for _, v := range resp.Violations {
		out = append(out, fmt.Sprintf("[%s] %s (%s)", name(v.Constraint), v.Message, strings.Join(v.Actions, ",")))
	}
	return out
}

func name(u *unstructured.Unstructured) string { return u.GetName() }

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for l := range strings.SplitSeq(s, "\n") {
			m[l]++
		}
		return m
	}
	w, g := count(want), count(got)
	var out []string
	for l, n := range w {
		for i := g[l]; i < n; i++ {
			out = append(out, "- "+l)
		}
	}
	for l, n := range g {
		for i := w[l]; i < n; i++ {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
