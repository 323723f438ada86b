package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// run executes the portcullis command line in-process.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestVerifySuite(t *testing.T) {
	code, out, errOut := run(t, "", "verify", "-v", "testdata/suite")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"=== RUN   required-labels\n    === RUN   allowed\n    --- PASS: allowed\t(",
		"    --- PASS: disallowed\t(",
		"    --- PASS: admission-review\t(",
		"    === SKIP  skipped\n",
		"--- PASS: invalid-parameters\t(",
		"ok\ttestdata/suite/suite.yaml\t",
		"\nPASS\n\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestVerifyRunFilter(t *testing.T) {
	code, out, _ := run(t, "", "verify", "-v", "--run", "^disallowed$", "testdata/suite/suite.yaml")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "--- PASS: disallowed") || strings.Contains(out, "--- PASS: allowed\t") {
		t.Fatalf("--run did not select only the disallowed case:\n%s", out)
	}
}

func TestVerifyFailure(t *testing.T) {
	dir := copyDir(t, "testdata/suite")
	suite := filepath.Join(dir, "suite.yaml")
	data, err := os.ReadFile(suite)
	if err != nil {
		t.Fatal(err)
	}
	// The allowed namespace now expects a violation: the case must fail.
	data = bytes.Replace(data, []byte("violations: no"), []byte("violations: yes"), 1)
	if err := os.WriteFile(suite, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "", "verify", dir+"/...")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{"    --- FAIL: allowed\t(", "\n        unexpected number of violations: got 0 violations but want at least 1: got messages []\n", "--- FAIL: required-labels\t(", "FAIL\t" + suite + "\t", "\nFAIL\n\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTestCommand(t *testing.T) {
	tmpl := "testdata/suite/template.yaml"
	t.Run("deny violation exits 1 with the constraint named", func(t *testing.T) {
		code, out, errOut := run(t, "", "test", "-f", tmpl, "-f", "testdata/suite/constraint.yaml", "-f", "testdata/suite/ns_disallowed.yaml", "-f", "testdata/suite/ns_allowed.yaml")
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
		}
		if !strings.Contains(out, `v1/Namespace bad: ["ns-must-have-test"] Message: "you must provide labels`) || strings.Contains(out, "Namespace good") {
			t.Fatalf("unexpected output:\n%s", out)
		}
	})
	t.Run("warn violation exits 0", func(t *testing.T) {
		warn := writeConstraint(t, "warn")
		code, out, _ := run(t, "", "test", "-f", tmpl, "-f", warn, "-f", "testdata/suite/ns_disallowed.yaml")
		if code != 0 || !strings.Contains(out, `["ns-must-have-test"]`) {
			t.Fatalf("exit %d, want 0 with a warn result:\n%s", code, out)
		}
	})
	t.Run("json output has gator's result shape", func(t *testing.T) {
		code, out, _ := run(t, "", "test", "-o", "json", "-f", tmpl, "-f", "testdata/suite/constraint.yaml", "-f", "testdata/suite/ns_disallowed.yaml")
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		var results []map[string]any
		if err := json.Unmarshal([]byte(out), &results); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(results) != 1 {
			t.Fatalf("%d results, want 1", len(results))
		}
		r := results[0]
		if r["target"] != "admission.k8s.gatekeeper.sh" || r["enforcementAction"] != "deny" ||
			!strings.Contains(r["msg"].(string), "test") {
			t.Errorf("result = %v", r)
		}
		if c, _ := r["constraint"].(map[string]any); c["kind"] != "K8sRequiredLabels" {
			t.Errorf("constraint = %v", r["constraint"])
		}
		if o, _ := r["violatingObject"].(map[string]any); o["kind"] != "Namespace" {
			t.Errorf("violatingObject = %v", r["violatingObject"])
		}
	})
	t.Run("yaml output and stdin", func(t *testing.T) {
		ns, err := os.ReadFile("testdata/suite/ns_disallowed.yaml")
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := run(t, string(ns), "test", "-o", "yaml", "-f", tmpl, "-f", "testdata/suite/constraint.yaml", "-f", "-")
		if code != 1 || !strings.Contains(out, "violatingObject:") || !strings.Contains(out, "enforcementAction: deny") {
			t.Fatalf("exit %d:\n%s%s", code, out, errOut)
		}
	})
}

func TestBadInput(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  x: \""+strings.Repeat("a", 3<<20)+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"malformed YAML", []string{"test", "-f", "testdata/bad/malformed.yaml"}, []string{"testdata/bad/malformed.yaml", "document 1", "malformed"}},
		{"not an object", []string{"test", "-f", "-"}, []string{"<stdin>", "not an object"}},
		{"unknown constraint kind", []string{"test", "-f", "testdata/suite/template.yaml", "-f", "testdata/bad/orphan_constraint.yaml"}, []string{"orphan_constraint.yaml", "unknown kind", "K8sNoSuchTemplate"}},
		{"rego that does not compile", []string{"test", "-f", "testdata/bad/broken_rego.yaml"}, []string{"broken_rego.yaml", "k8sbroken", "line 6", "column"}},
		{"CEL that does not compile", []string{"test", "-f", "testdata/bad/broken_cel.yaml"}, []string{"broken_cel.yaml", "k8sbrokencel", "spec.targets[0].code[1].source.validations[2].expression", "undefined field 'nope'"}},
		{"CEL over the cost budget", []string{"test", "-f", "testdata/bad/costly_cel.yaml"}, []string{"costly_cel.yaml", "k8scostlycel", "spec.targets[0].code[0].source.variables[0].expression", "estimated cost exceeds budget"}},
		{"bench engine", []string{"bench", "--engine", "wasm", "-f", "testdata/suite/template.yaml"}, []string{"--engine", `"wasm"`}},
		{"template name is not its lowercase kind", []string{"test", "-f", "testdata/bad/wrong_name.yaml"}, []string{"wrong_name.yaml", `"notthekind"`, `"k8ssomething"`}},
		{"parameters fail the schema", []string{"test", "-f", "testdata/suite/template.yaml", "-f", "testdata/suite/constraint_invalid.yaml"}, []string{"constraint_invalid.yaml", "bad-params", "spec.parameters.labels"}},
		{"suite points at a missing file", []string{"verify", "testdata/bad/missing_file_suite.yaml"}, []string{"no-such-template.yaml", "no such file"}},
		{"object over 3 MiB", []string{"test", "-f", big}, []string{"big.yaml", "too large"}},
		{"missing input path", []string{"test", "-f", "testdata/nope.yaml"}, []string{`reading: reading from filenames: stat on path "testdata/nope.yaml"`, "no such file"}},
		{"verify without a path", []string{"verify"}, []string{"requires at least 1 arg"}},
		{"test with an unknown flag", []string{"test", "--nope"}, []string{"unknown flag: --nope"}},
		{"verify with an unknown output", []string{"verify", "-o", "tap", "testdata/suite"}, []string{`-o: "tap" is not junit or json`}},
		{"suite with a bad filter", []string{"verify", "-r", "a//b//c", "testdata/suite"}, []string{`compiling filter: invalid test filter: a filter may include at most one "//"`}},
		{"missing suite path", []string{"verify", "testdata/nope"}, []string{"listing test files", "testdata/nope", "no such file"}},
		{"verify file with another extension", []string{"verify", "testdata/gator/manifest.txt"}, []string{`unsupported extension: ".txt"`}},
		{"verify recursion into a file", []string{"verify", "testdata/suite/suite.yaml/..."}, []string{"can only recursively traverse directories"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdin := ""
			if slices.Contains(tc.args, "-") {
				stdin = "- just\n- a list\n"
			}
			code, out, errOut := run(t, stdin, tc.args...)
			// gator exits 1 on any error; bench keeps exit 2.
			want := 1
			if tc.args[0] == "bench" {
				want = 2
			}
			if code != want {
				t.Fatalf("exit %d, want %d\n%s%s", code, want, out, errOut)
			}
			all := out + errOut
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			if strings.Contains(all, "panic") || strings.Contains(all, "goroutine ") {
				t.Fatalf("panicked:\n%s", all)
			}
		})
	}
}

func TestBench(t *testing.T) {
	code, out, errOut := run(t, "", "bench", "-o", "json", "-n", "3", "-c", "2", "--memory",
		"-f", "testdata/suite/template.yaml", "-f", "testdata/suite/constraint.yaml",
		"-f", "testdata/suite/ns_allowed.yaml", "-f", "testdata/suite/ns_disallowed.yaml")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var r benchResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if r.Templates != 1 || r.Constraints != 1 || r.Objects != 2 || r.Reviews != 6 || r.Concurrency != 2 {
		t.Errorf("counts = %+v", r)
	}
	// One of the two namespaces violates, in each of the 3 iterations.
	if r.Violations != 3 || r.Errors != 0 {
		t.Errorf("violations = %d, errors = %d; want 3 and 0", r.Violations, r.Errors)
	}
	if r.ReviewsPerSec <= 0 || r.P99Ms < r.P50Ms || r.AllocsPerRev == 0 {
		t.Errorf("implausible figures: %+v", r)
	}
}

func writeConstraint(t *testing.T, action string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/suite/constraint.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("spec:\n"), []byte("spec:\n  enforcementAction: "+action+"\n"), 1)
	p := filepath.Join(t.TempDir(), "constraint.yaml")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// A Pod with only generateName, as a ReplicaSet creates it, is reviewed
// even though it cannot go into the inventory.
func TestTestGenerateNameObject(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ns.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  generateName: team-\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "test", "-f", "testdata/suite/template.yaml", "-f", "testdata/suite/constraint.yaml", "-f", p)
	if code != 1 || !strings.Contains(out, "you must provide labels") {
		t.Fatalf("exit %d, want 1 with a violation:\n%s%s", code, out, errOut)
	}
}

func TestTestEngineChoice(t *testing.T) {
	files := []string{"-f", "testdata/cel/template.yaml", "-f", "testdata/suite/constraint.yaml", "-f", "testdata/suite/ns_disallowed.yaml"}
	code, out, errOut := run(t, "", append([]string{"test"}, files...)...)
	if code != 1 || !strings.Contains(out, `["ns-must-have-test"] Message: "cel: missing labels: test"`) {
		t.Errorf("CEL first: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, "", append([]string{"test", "--enable-k8s-native-validation=false"}, files...)...)
	if code != 1 || !strings.Contains(out, `["ns-must-have-test"] Message: "rego: you must provide labels: {\"test\"}"`) {
		t.Errorf("Rego: exit %d\n%s%s", code, out, errOut)
	}
	// A CEL-only template runs CEL either way.
	for _, flag := range []string{"--enable-k8s-native-validation=true", "--enable-k8s-native-validation=false"} {
		code, out, errOut = run(t, "", "test", flag, "-f", "testdata/cel/cel_only.yaml", "-f", "testdata/suite/ns_disallowed.yaml", "-f", "testdata/suite/ns_allowed.yaml")
		if code != 1 || strings.Count(out, `["team-prefix"] Message: "names must start with team-"`) != 2 {
			t.Errorf("%s: exit %d\n%s%s", flag, code, out, errOut)
		}
	}
}

func TestBenchEngines(t *testing.T) {
	files := []string{"-n", "2", "-f", "testdata/cel/template.yaml", "-f", "testdata/cel/cel_only.yaml",
		"-f", "testdata/suite/constraint.yaml", "-f", "testdata/suite/ns_allowed.yaml", "-f", "testdata/suite/ns_disallowed.yaml"}
	code, out, errOut := run(t, "", append([]string{"bench", "--engine", "all"}, files...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"=== Benchmark Results: Rego Engine ===", "=== Benchmark Results: CEL Engine ===", "=== Engine Comparison ===", "Performance: "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "rego engine: skipped 1 templates without Rego code (and their 1 constraints): k8snamestartswithteam") {
		t.Errorf("no warning for the CEL-only template:\n%s", errOut)
	}
	code, out, errOut = run(t, "", append([]string{"bench", "--engine", "all", "-o", "json"}, files...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var both map[string]benchResult
	if err := json.Unmarshal([]byte(out), &both); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	// Rego: one template, one constraint, one violation per iteration;
	// CEL: two templates, two constraints, three violations.
	if r := both["rego"]; r.Engine != "rego" || r.Templates != 1 || r.Constraints != 1 || r.Violations != 2 {
		t.Errorf("rego: %+v", r)
	}
	if c := both["cel"]; c.Engine != "cel" || c.Templates != 2 || c.Constraints != 2 || c.Violations != 6 {
		t.Errorf("cel: %+v", c)
	}
}

// TestArgs: started as manager (the image's /manager, which Gatekeeper's
// chart runs), the binary is `portcullis manager --gatekeeper-defaults`.
func TestArgs(t *testing.T) {
	for _, c := range []struct{ argv, want []string }{
		{[]string{"/portcullis", "verify", "x"}, []string{"verify", "x"}},
		{[]string{"/manager", "--port=8443"}, []string{"manager", "--gatekeeper-defaults", "--port=8443"}},
		{[]string{"manager"}, []string{"manager", "--gatekeeper-defaults"}},
		{[]string{"/usr/local/bin/portcullis"}, []string{}},
		{nil, nil},
	} {
		if got := Args(c.argv); !slices.Equal(got, c.want) {
			t.Errorf("Args(%q) = %q, want %q", c.argv, got, c.want)
		}
	}
}
