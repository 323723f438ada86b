package cli

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// Inputs shared by the gator parity tests.
const (
	gTmpl       = "testdata/suite/template.yaml"
	gConstraint = "testdata/suite/constraint.yaml"
	gBad        = "testdata/suite/ns_disallowed.yaml"
	gGood       = "testdata/suite/ns_allowed.yaml"
)

func readTestdata(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGatorTest pins `portcullis test` to `gator test`, behavior by
// behavior. Each case names what of gator it pins: its --help and
// website/docs/gator.md, cmd/gator/test/test.go and pkg/gator/reader.
func TestGatorTest(t *testing.T) {
	policy := readTestdata(t, gTmpl) + "\n---\n" + readTestdata(t, gConstraint)
	bad := readTestdata(t, gBad)
	tests := []struct {
		name    string
		gator   string // the gator behavior pinned
		stdin   string
		args    []string
		code    int
		stdout  []string // substrings of stdout
		exact   *string  // all of stdout, when set
		stderr  []string
		noStdin []string // substrings stdout must not have
	}{
		{
			name: "stdin without -f", gator: "`cat manifest.yaml | gator test` reads stdin when it is not a terminal",
			stdin: policy + "\n---\n" + bad, args: []string{"test"}, code: 1,
			stdout: []string{`v1/Namespace bad: ["ns-must-have-test"] Message: "you must provide labels: {\"test\"}"` + "\n"},
		},
		{
			name: "stdin with -f", gator: "stdin is read as well as every --filename",
			stdin: bad, args: []string{"test", "-f", gTmpl, "-f", gConstraint}, code: 1,
			stdout: []string{`v1/Namespace bad: ["ns-must-have-test"]`},
		},
		{
			name: "no input", gator: `ErrFatalf("no input data identified"): stderr, exit 1`,
			args: []string{"test"}, code: 1, exact: new(""), stderr: []string{"no input data identified\n"},
		},
		{
			name: "named file with another extension", gator: `verifyFile: path %q must be of extensions: [.yaml .yml .json]`,
			args: []string{"test", "-f", "testdata/gator/manifest.txt"}, code: 1, exact: new(""),
			stderr: []string{`reading: reading from filenames: path "testdata/gator/manifest.txt" must be of extensions: [.yaml .yml .json]` + "\n"},
		},
		{
			name: "folder skips other extensions", gator: "filesBelow skips files whose extension is not exactly .yaml, .yml or .json",
			args: []string{"test", "-f", "testdata/gator/dir"}, code: 1,
			stdout: []string{`v1/Namespace bad: ["ns-must-have-test"]`},
		},
		{
			name: "missing path", gator: `stat on path %q: ...; exit 1`,
			args: []string{"test", "-f", "testdata/gator/nope.yaml"}, code: 1,
			stderr: []string{`reading: reading from filenames: stat on path "testdata/gator/nope.yaml"`},
		},
		{
			name: "template that does not compile", gator: `ErrFatalf("auditing objects: %v"): exit 1`,
			args: []string{"test", "-f", "testdata/bad/broken_rego.yaml"}, code: 1,
			stderr: []string{"auditing objects: ", "broken_rego.yaml"},
		},
		{
			name: "no violation", gator: "exit 0 and nothing printed without results",
			args: []string{"test", "-f", gTmpl, "-f", gConstraint, "-f", gGood}, code: 0, exact: new(""),
		},
		{
			name: "warn violation exits 0", gator: "only a deny enforcementAction exits 1",
			args: []string{"test", "-f", gTmpl, "-f", "testdata/gator/warn_constraint.yaml", "-f", gBad}, code: 0,
			stdout: []string{`["ns-should-have-owner"] Message: "you must provide labels: {\"owner\"}"`},
		},
		{
			name: "deny-only", gator: "--deny-only prints only results with a deny action; the exit status is unchanged",
			args: []string{"test", "--deny-only", "-f", gTmpl, "-f", gConstraint, "-f", "testdata/gator/warn_constraint.yaml", "-f", gBad}, code: 1,
			stdout: []string{`["ns-must-have-test"]`}, noStdin: []string{"ns-should-have-owner"},
		},
		{
			name: "results sorted by action then message", gator: "GatorResponses.Results sorts by enforcementAction, then msg",
			args: []string{"test", "-f", gTmpl, "-f", "testdata/gator/warn_constraint.yaml", "-f", gConstraint, "-f", gBad}, code: 1,
			stdout: []string{`["ns-must-have-test"] Message: "you must provide labels: {\"test\"}"` + "\n" + `v1/Namespace bad: ["ns-should-have-owner"]`},
		},
		{
			name: "json without results", gator: "json.MarshalIndent of a nil slice: null, no newline",
			args: []string{"test", "-o", "json", "-f", gTmpl, "-f", gConstraint, "-f", gGood}, code: 0, exact: new("null"),
		},
		{
			name: "yaml without results", gator: "yaml.v3 of an empty result list",
			args: []string{"test", "-o", "yaml", "-f", gTmpl, "-f", gConstraint, "-f", gGood}, code: 0, exact: new("[]\n"),
		},
		{
			name: "trace", gator: "-t/--trace: each human-readable result is followed by Trace: and the evaluation's trace",
			args: []string{"test", "-t", "-f", gTmpl, "-f", gConstraint, "-f", gBad}, code: 1,
			stdout: []string{`["ns-must-have-test"] Message:`, "\nTrace: "},
		},
		{
			name: "verbose", gator: "-v/--verbose is accepted (it adds Rego print() output, of which Portcullis has none)",
			args: []string{"test", "-v", "-f", gTmpl, "-f", gConstraint, "-f", gBad}, code: 1,
			stdout: []string{`["ns-must-have-test"]`},
		},
		{
			name: "k8s native validation off", gator: "--enable-k8s-native-validation=false is accepted",
			args: []string{"test", "--enable-k8s-native-validation=false", "-f", gTmpl, "-f", gConstraint, "-f", gBad}, code: 1,
			stdout: []string{`["ns-must-have-test"]`},
		},
		{
			name: "failure policy Fail by default", gator: "a K8sNativeValidation source without failurePolicy fails on an evaluation error (default Fail)",
			args: []string{"test", "-f", "testdata/gator/cel_error_template.yaml", "-f", "testdata/gator/cel_error_constraint.yaml", "-f", "testdata/gator/cm_other.yaml"}, code: 1,
			stdout: []string{`["cel-errors"] Message:`, "no such key"},
		},
		{
			name: "failure policy Ignore", gator: "--default-k8s-native-validation-failure-policy=Ignore drops the evaluation errors of sources without failurePolicy",
			args: []string{"test", "--default-k8s-native-validation-failure-policy=Ignore", "-f", "testdata/gator/cel_error_template.yaml", "-f", "testdata/gator/cel_error_constraint.yaml", "-f", "testdata/gator/cm_other.yaml"}, code: 0,
		},
		{
			name: "failure policy invalid", gator: `ErrFatalf("invalid default K8sNativeValidation failure policy: %v")`,
			args: []string{"test", "--default-k8s-native-validation-failure-policy=Sometimes", "-f", gTmpl}, code: 1,
			stderr: []string{"invalid default K8sNativeValidation failure policy: unrecognized failure policy: Sometimes"},
		},
		{
			name: "duplicate objects warn on stderr", gator: `logConflict: WARNING - Resource named %q (from %s) is already defined in %s, on stderr`,
			args: []string{"test", "-f", gTmpl, "-f", gConstraint, "-f", gBad, "-f", "testdata/gator/dir/ns_disallowed.yaml"}, code: 1,
			stdout: []string{`v1/Namespace bad: ["ns-must-have-test"]`},
			stderr: []string{`WARNING - Resource named "bad" (from file: "testdata/gator/dir/ns_disallowed.yaml") is already defined in file: "testdata/suite/ns_disallowed.yaml"`},
		},
		{
			name: "object without namespace is in namespace \"\"", gator: "Expander.NamespaceForResource: &Namespace{} for objects without metadata.namespace, so namespaces: [default] does not match them",
			args: []string{"test", "-f", gTmpl, "-f", "testdata/gator/cm_constraint.yaml", "-f", "testdata/gator/cm_nonamespace.yaml", "-f", "testdata/gator/cm_default.yaml"}, code: 1,
			stdout: []string{`v1/ConfigMap default/in-default: ["cm-in-default"]`}, noStdin: []string{"no-namespace"},
		},
		{
			name: "default namespace exists", gator: "NamespaceForResource: a bare default Namespace when none is given, so namespaceSelector matches its (no) labels",
			args: []string{"test", "-f", gTmpl, "-f", "testdata/gator/cm_selector_constraint.yaml", "-f", "testdata/gator/cm_default.yaml"}, code: 1,
			stdout: []string{`v1/ConfigMap default/in-default: ["cm-in-unlabelled-namespaces"] Message: "you must provide labels`},
		},
		{
			name: "given Namespace is used", gator: "NamespaceForResource: the Namespace object of the input",
			args: []string{"test", "-f", gTmpl, "-f", "testdata/gator/cm_selector_constraint.yaml", "-f", "testdata/gator/cm_other.yaml", "-f", "testdata/gator/ns_other_labelled.yaml"}, code: 0, exact: new(""),
		},
		{
			name: "OCI images refused", gator: "-i/--image (not supported here: said in --help)",
			args: []string{"test", "-i", "ghcr.io/x/y:1", "-f", gTmpl}, code: 1,
			stderr: []string{"OCI image inputs (-i/--image) are not supported"},
		},
		{
			name: "help says OCI images are out", gator: "--help lists gator's flags",
			args: []string{"test", "--help"}, code: 0,
			stdout: []string{"OCI image inputs (gator's -i/--image) are not supported", "--deny-only", "--stats", "--trace", "--verbose", "--enable-k8s-native-validation", "--default-k8s-native-validation-failure-policy"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("gator: %s\nexit %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.gator, code, tc.code, out, errOut)
			}
			if tc.exact != nil && out != *tc.exact {
				t.Errorf("gator: %s\nstdout = %q, want %q", tc.gator, out, *tc.exact)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("gator: %s\nstdout lacks %q:\n%s", tc.gator, w, out)
				}
			}
			for _, w := range tc.noStdin {
				if strings.Contains(out, w) {
					t.Errorf("gator: %s\nstdout has %q:\n%s", tc.gator, w, out)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("gator: %s\nstderr lacks %q:\n%s", tc.gator, w, errOut)
				}
			}
			if strings.Contains(out+errOut, "panic") {
				t.Fatalf("panicked:\n%s%s", out, errOut)
			}
		})
	}
}

// TestGatorTestStructuredOutput pins -o json and -o yaml to gator's shapes,
// which differ: JSON uses types.Result's JSON tags, flat; YAML is yaml.v3 of
// YamlGatorResult, which wraps the result as `result:` with lowercased keys
// and the constraint as `object:`.
func TestGatorTestStructuredOutput(t *testing.T) {
	files := []string{"-f", gTmpl, "-f", gConstraint, "-f", gBad}
	t.Run("json", func(t *testing.T) {
		code, out, errOut := run(t, "", append([]string{"test", "-o", "json"}, files...)...)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, errOut)
		}
		if strings.HasSuffix(out, "\n") {
			t.Errorf("gator prints its JSON without a final newline:\n%q", out)
		}
		var results []map[string]any
		if err := json.Unmarshal([]byte(out), &results); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(results) != 1 {
			t.Fatalf("%d results, want 1", len(results))
		}
		r := results[0]
		for _, k := range []string{"target", "msg", "metadata", "constraint", "enforcementAction", "violatingObject", "trace"} {
			if _, ok := r[k]; !ok {
				t.Errorf("result lacks %q: %v", k, r)
			}
		}
		if r["trace"] != nil || r["enforcementAction"] != "deny" || r["target"] != "admission.k8s.gatekeeper.sh" {
			t.Errorf("result = %v", r)
		}
		if md, _ := r["metadata"].(map[string]any); md["details"] == nil {
			t.Errorf("metadata = %v, want Rego's details", r["metadata"])
		}
		if c, _ := r["constraint"].(map[string]any); c["kind"] != "K8sRequiredLabels" {
			t.Errorf("constraint = %v", r["constraint"])
		}
		if !strings.Contains(out, "\n    {\n        \"target\"") {
			t.Errorf("gator indents with four spaces:\n%s", out)
		}
	})
	t.Run("yaml", func(t *testing.T) {
		code, out, errOut := run(t, "", append([]string{"test", "-o", "yaml"}, files...)...)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, errOut)
		}
		// What `yq '.[0].result.msg'` reads.
		var doc []map[string]any
		if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, out)
		}
		if len(doc) != 1 {
			t.Fatalf("%d results, want 1:\n%s", len(doc), out)
		}
		res, _ := doc[0]["result"].(map[string]any)
		if res["msg"] != `you must provide labels: {"test"}` {
			t.Errorf(".[0].result.msg = %v\n%s", res["msg"], out)
		}
		c, _ := res["constraint"].(map[string]any)
		if obj, _ := c["object"].(map[string]any); obj["kind"] != "K8sRequiredLabels" {
			t.Errorf(".[0].result.constraint.object = %v", c)
		}
		if res["enforcementaction"] != "deny" || res["target"] != "admission.k8s.gatekeeper.sh" {
			t.Errorf(".[0].result = %v", res)
		}
		if _, ok := res["scopedenforcementactions"]; !ok {
			t.Errorf(".[0].result lacks scopedenforcementactions: %v", res)
		}
		if vo, _ := doc[0]["violatingObject"].(map[string]any); vo["kind"] != "Namespace" {
			t.Errorf(".[0].violatingObject = %v", doc[0]["violatingObject"])
		}
		if tr, ok := doc[0]["trace"]; !ok || tr != nil {
			t.Errorf(".[0].trace = %v, want null", tr)
		}
	})
	t.Run("stats", func(t *testing.T) {
		code, out, _ := run(t, "", append([]string{"test", "--stats", "-o", "json"}, files...)...)
		var js struct {
			Results []map[string]any `json:"results"`
			Stats   []map[string]any `json:"stats"`
		}
		if code != 1 || json.Unmarshal([]byte(out), &js) != nil || len(js.Results) != 1 || len(js.Stats) == 0 || js.Stats[0]["scope"] == nil {
			t.Errorf("--stats -o json: exit %d, want {results, stats}:\n%s", code, out)
		}
		code, out, _ = run(t, "", append([]string{"test", "--stats", "-o", "yaml"}, files...)...)
		var ys map[string]any
		if err := yaml.Unmarshal([]byte(out), &ys); code != 1 || err != nil || ys["results"] == nil || ys["stats"] == nil {
			t.Errorf("--stats -o yaml: exit %d, err %v, want {results, stats}:\n%s", code, err, out)
		}
	})
	t.Run("trace in json", func(t *testing.T) {
		_, out, _ := run(t, "", append([]string{"test", "-t", "-o", "json"}, files...)...)
		var results []map[string]any
		if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != 1 {
			t.Fatalf("not one JSON result: %v\n%s", err, out)
		}
		if tr, _ := results[0]["trace"].(string); tr == "" {
			t.Errorf("trace = %v, want the evaluation trace", results[0]["trace"])
		}
	})
}

// TestGatorVerify pins `portcullis verify` to `gator verify`
// (cmd/gator/verify/verify.go, pkg/gator/verify: PrinterGo, Filter,
// Assertion, Runner).
func TestGatorVerify(t *testing.T) {
	suite := "testdata/suite/suite.yaml"
	tests := []struct {
		name   string
		gator  string
		args   []string
		code   int
		stdout []string
		not    []string
		stderr []string
	}{
		{
			name: "quiet pass", gator: "PrinterGo: ok\\t<path>\\t<secs>, then PASS and Println's newline",
			args: []string{"verify", suite}, code: 0,
			stdout: []string{"ok\ttestdata/suite/suite.yaml\t0.", "s\nPASS\n\n"}, not: []string{"=== RUN"},
		},
		{
			name: "verbose", gator: "-v: === RUN, indented === RUN/--- PASS per case, === SKIP for skipped cases",
			args: []string{"verify", "-v", suite}, code: 0,
			stdout: []string{"=== RUN   required-labels\n    === RUN   allowed\n    --- PASS: allowed\t(0.", "    === SKIP  skipped\n", "--- PASS: required-labels\t(", "=== RUN   invalid-parameters\n--- PASS: invalid-parameters\t("},
		},
		{
			name: "run: one regexp", gator: "Filter RE: cases whose name or whose test's name matches",
			args: []string{"verify", "-v", "-r", "^disallowed$", suite}, code: 0,
			stdout: []string{"--- PASS: disallowed\t", "    === SKIP  allowed\n"}, not: []string{"invalid-parameters\t"},
		},
		{
			name: "run: TEST//", gator: "Filter TEST//: every case of the tests matching TEST",
			args: []string{"verify", "-v", "-r", "^invalid-parameters$//", suite}, code: 0,
			stdout: []string{"--- PASS: invalid-parameters\t", "=== SKIP  required-labels\n"},
		},
		{
			name: "run: //CASE", gator: "Filter //CASE: the cases matching CASE in every test",
			args: []string{"verify", "-v", "-r", "//^admission", suite}, code: 0,
			stdout: []string{"    --- PASS: admission-review\t", "    === SKIP  disallowed\n"},
		},
		{
			name: "trace", gator: "-t: TRACE: <case>\\t<trace> after each case",
			args: []string{"verify", "-t", "-r", "//^disallowed$", suite}, code: 0,
			stdout: []string{"TRACE: disallowed\t"},
		},
		{
			name: "flags of the CEL engine", gator: "--enable-k8s-native-validation and --default-k8s-native-validation-failure-policy are accepted",
			args: []string{"verify", "--enable-k8s-native-validation=false", "--default-k8s-native-validation-failure-policy=Ignore", suite}, code: 0,
			stdout: []string{"PASS\n"},
		},
		{
			name: "skipped suite", gator: "skip: true on a suite: nothing runs, ok\\t<path>\\t0.000s",
			args: []string{"verify", "testdata/gator/skipped_suite.yaml"}, code: 0,
			stdout: []string{"ok\ttestdata/gator/skipped_suite.yaml\t0.000s\nPASS\n\n"}, not: []string{"never-run"},
		},
		{
			name: "inventory", gator: "a case's inventory: files are data.inventory for that case only",
			args: []string{"verify", "-v", "-r", "//^(prop-selected|no-networkpolicy)$", "../templates/requirednetworkpolicy"}, code: 0,
			stdout: []string{"    --- PASS: prop-selected\t(", "    --- PASS: no-networkpolicy\t("},
		},
		{
			name: "no suites", gator: "a path without suites runs nothing: PASS, exit 0 (Portcullis warns on stderr)",
			args: []string{"verify", "testdata/gator/dir"}, code: 0,
			stdout: []string{"PASS\n\n"}, stderr: []string{"warning: no suites"},
		},
		{
			name: "missing template fails the test", gator: "addTemplate's error is the test's: --- FAIL: <test> and the error indented two spaces",
			args: []string{"verify", "testdata/bad/missing_file_suite.yaml"}, code: 1,
			stdout: []string{"--- FAIL: missing\t(", "\n  ", "no-such-template.yaml", "FAIL\ttestdata/bad/missing_file_suite.yaml\t"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, "", tc.args...)
			if code != tc.code {
				t.Fatalf("gator: %s\nexit %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.gator, code, tc.code, out, errOut)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("gator: %s\nstdout lacks %q:\n%s", tc.gator, w, out)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("gator: %s\nstdout has %q:\n%s", tc.gator, w, out)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("gator: %s\nstderr lacks %q:\n%s", tc.gator, w, errOut)
				}
			}
		})
	}
}

// junitReport is what CI systems read of JUnit XML.
type junitReport struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Suites   []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, out string) junitReport {
	t.Helper()
	var r junitReport
	dec := xml.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("not JUnit XML: %v\n%s", err, out)
	}
	return r
}

// TestVerifyJUnit: -o junit is valid JUnit XML alone on stdout, one
// testcase per case, failures with their message; our templates/ suites
// produce it.
func TestVerifyJUnit(t *testing.T) {
	t.Run("templates", func(t *testing.T) {
		code, out, errOut := run(t, "", "verify", "-o", "junit", "../templates/...")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		if !strings.HasPrefix(out, "<?xml") {
			t.Errorf("stdout does not start with the XML header:\n%.200s", out)
		}
		r := parseJUnit(t, out)
		if len(r.Suites) < 8 || r.Tests < 20 || r.Failures != 0 {
			t.Errorf("%d suites, %d testcases, %d failures; want every templates/ suite, passing", len(r.Suites), r.Tests, r.Failures)
		}
	})
	t.Run("failures and skips", func(t *testing.T) {
		dir := copyDir(t, "testdata/suite")
		data := strings.Replace(readTestdata(t, dir+"/suite.yaml"), "violations: no", "violations: yes", 1)
		if err := os.WriteFile(dir+"/suite.yaml", []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, _ := run(t, "", "verify", "-o", "junit", dir)
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		r := parseJUnit(t, out)
		cases := map[string]string{}
		for _, s := range r.Suites {
			for _, c := range s.Cases {
				state := "pass"
				switch {
				case c.Failure != nil:
					state = "fail: " + c.Failure.Message
				case c.Skipped != nil:
					state = "skip"
				}
				cases[c.Name] = state
			}
		}
		want := map[string]string{
			"required-labels/allowed":          "fail: unexpected number of violations: got 0 violations but want at least 1: got messages []",
			"required-labels/disallowed":       "pass",
			"required-labels/admission-review": "pass",
			"required-labels/skipped":          "skip",
			"invalid-parameters":               "pass",
		}
		for k, v := range want {
			if cases[k] != v {
				t.Errorf("testcase %s: %q, want %q (all: %v)", k, cases[k], v, cases)
			}
		}
		if r.Failures != 1 || r.Tests != 5 {
			t.Errorf("tests=%d failures=%d, want 5 and 1", r.Tests, r.Failures)
		}
	})
}

// TestVerifyJSON: -o json is one JSON report on stdout.
func TestVerifyJSON(t *testing.T) {
	code, out, errOut := run(t, "", "verify", "-o", "json", "testdata/suite/suite.yaml")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var rep struct {
		Pass   bool `json:"pass"`
		Suites []struct {
			Path  string `json:"path"`
			Tests []struct {
				Name  string `json:"name"`
				Cases []struct {
					Name    string `json:"name"`
					Skipped bool   `json:"skipped"`
					Error   string `json:"error"`
				} `json:"cases"`
			} `json:"tests"`
		} `json:"suites"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if !rep.Pass || len(rep.Suites) != 1 || rep.Suites[0].Path != "testdata/suite/suite.yaml" || len(rep.Suites[0].Tests) != 2 || len(rep.Suites[0].Tests[0].Cases) != 4 {
		t.Errorf("report = %+v", rep)
	}
	if c := rep.Suites[0].Tests[0].Cases[3]; c.Name != "skipped" || !c.Skipped {
		t.Errorf("case 3 = %+v, want the skipped case", c)
	}
}
