package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// Inputs of the expansion tests: testdata/expansion holds Gatekeeper's
// examples (website/docs/expansion.md, test/expansion, test/gator),
// written anew.
const (
	xDir        = "testdata/expansion/"
	xTemplate   = gTmpl
	xOwner      = xDir + "pods_need_owner.yaml"
	xExpand     = xDir + "expand_deployments.yaml"
	xDeployment = xDir + "deployment.yaml"
	xBad        = "testdata/expansion-bad/"
	xMut        = "testdata/expansion-mutators/"
)

// gatorCase is one run of the command line and what it must print.
type gatorCase struct {
	name   string
	gator  string // the gator behavior pinned
	stdin  string
	args   []string
	code   int
	stdout []string // substrings of stdout
	exact  *string  // all of stdout, when set
	not    []string // substrings neither output may have
	stderr []string
}

func (tc *gatorCase) check(t *testing.T) {
	t.Helper()
	code, out, errOut := run(t, tc.stdin, tc.args...)
	if code != tc.code {
		t.Fatalf("gator: %s\nexit %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.gator, code, tc.code, out, errOut)
	}
	if tc.exact != nil && out != *tc.exact {
		t.Errorf("gator: %s\nstdout = %q\nwant     %q", tc.gator, out, *tc.exact)
	}
	for _, w := range tc.stdout {
		if !strings.Contains(out, w) {
			t.Errorf("gator: %s\nstdout lacks %q:\n%s", tc.gator, w, out)
		}
	}
	for _, w := range tc.stderr {
		if !strings.Contains(errOut, w) {
			t.Errorf("gator: %s\nstderr lacks %q:\n%s", tc.gator, w, errOut)
		}
	}
	for _, w := range append(tc.not, "panic") {
		if strings.Contains(out+errOut, w) {
			t.Errorf("gator: %s\noutput has %q:\nstdout:\n%s\nstderr:\n%s", tc.gator, w, out, errOut)
		}
	}
}

// TestExpansionGatorTest pins `portcullis test` with ExpansionTemplates to
// `gator test` (pkg/gator/test/test.go: every object is expanded and its
// resultants reviewed with source Generated; pkg/expansion/aggregate.go:
// their results are the object's, "[Implied by <template>] " before the
// message, the template's enforcementAction in place of the constraint's).
func TestExpansionGatorTest(t *testing.T) {
	policy := []string{"test", "-f", xTemplate, "-f", xOwner}
	tests := []gatorCase{
		{
			name: "a deployment is judged by its pod", gator: "resultant results are reported against the parent with [Implied by <template>]",
			args: append(policy, "-f", xExpand, "-f", xDeployment), code: 1,
			stdout: []string{`apps/v1/Deployment nginx-deployment: ["pods-need-owner"] Message: "[Implied by expand-deployments] you must provide labels: {\"owner\"}"` + "\n"},
		},
		{
			name: "without a template the deployment passes", gator: "nothing is expanded without ExpansionTemplates",
			args: append(policy, "-f", xDeployment), code: 0, exact: new(""),
		},
		{
			name: "a compliant pod template passes", gator: "the resultant is the templateSource's value",
			args: append(policy, "-f", xExpand, "-f", xDir+"deployment_owned.yaml"), code: 0, exact: new(""),
		},
		{
			name: "a pod's own policy is unchanged", gator: "objects are reviewed as before, with source Original",
			args: append(policy, "-f", xExpand, "-f", xDir+"pod.yaml"), code: 1,
			stdout: []string{`v1/Pod lonely: ["pods-need-owner"] Message: "you must provide labels: {\"owner\"}"`},
		},
		{
			name: "the template's enforcementAction overrides", gator: "OverrideEnforcementAction: warn does not exit 1",
			args: append(policy, "-f", xDir+"warn_expand_deployments.yaml", "-f", xDeployment), code: 0,
			stdout: []string{`["pods-need-owner"] Message: "[Implied by warn-expand-deployments] you must provide labels`},
		},
		{
			name: "recursion: a cronjob's job's pod", gator: "expandRecursive: CronJob -> Job -> Pod, prefixed by the template that made the Pod",
			args: append(policy, "-f", xDir+"expand_cronjobs_jobs.yaml", "-f", xDir+"cronjob.yaml"), code: 1,
			stdout: []string{`batch/v1/CronJob jobs/nightly: ["pods-need-owner"] Message: "[Implied by expand-jobs] you must provide labels`},
		},
		{
			name: "source Generated", gator: "match.source: Generated judges resultants only",
			args: []string{"test", "-f", xTemplate, "-f", xDir + "generated_pods_need_owner.yaml", "-f", xExpand, "-f", xDeployment, "-f", xDir + "pod.yaml"}, code: 1,
			stdout: []string{`apps/v1/Deployment nginx-deployment: ["generated-pods-need-owner"]`}, not: []string{"Pod lonely"},
		},
		{
			name: "source Original", gator: "match.source: Original spares resultants",
			args: []string{"test", "-f", xTemplate, "-f", xDir + "original_pods_need_owner.yaml", "-f", xExpand, "-f", xDeployment, "-f", xDir + "pod.yaml"}, code: 1,
			stdout: []string{`v1/Pod lonely: ["original-pods-need-owner"]`}, not: []string{"Deployment nginx-deployment"},
		},
		{
			name: "stdin", gator: "ExpansionTemplates may come on stdin like any input",
			stdin: readTestdata(t, xExpand) + "\n---\n" + readTestdata(t, xDeployment), args: policy, code: 1,
			stdout: []string{"[Implied by expand-deployments]"},
		},
		{
			name: "a cycle is an error", gator: `ErrFatalf("auditing objects: %v"): NewExpander's "error upserting template"`,
			args: append(policy, "-f", xBad+"expand_cycle.yaml", "-f", xDir+"cronjob.yaml"), code: 1, exact: new(""),
			stderr: []string{"auditing objects: error creating expander: error upserting template expand-pods (testdata/expansion-bad/expand_cycle.yaml#2): template forms expansion cycle: expand-cronjobs, expand-jobs, expand-pods\n"},
		},
		{
			name: "templateSource missing in the object", gator: `"expanding resource %s": exit 1`,
			args: append(policy, "-f", xBad+"expand_missing_source.yaml", "-f", xDeployment), code: 1, exact: new(""),
			stderr: []string{`auditing objects: testdata/expansion/deployment.yaml: expanding Deployment "nginx-deployment": ExpansionTemplate "expand-pod-templates": templateSource not found: Deployment "nginx-deployment" has no field spec.podTemplate`},
		},
		{
			name: "an invalid template names its field", gator: `ValidateTemplate's "has empty source field"`,
			stdin: strings.Replace(readTestdata(t, xExpand), `templateSource: "spec.template"`, `templateSource: ""`, 1), args: append(policy, "-f", xDeployment), code: 1,
			stderr: []string{"auditing objects: error creating expander: error upserting template expand-deployments (<stdin>): ExpansionTemplate expand-deployments has empty source field"},
		},
		{
			name: "a generated kind no constraint matches", gator: "gator says nothing; Portcullis warns on stderr and judges as gator does",
			args: append(policy, "-f", xBad+"expand_to_configmaps.yaml", "-f", xDeployment), code: 0, exact: new(""),
			stderr: []string{`warning: ExpansionTemplate "expand-to-configmaps": spec.generatedGVK v1 ConfigMap is matched by no constraint`},
		},
		{
			name: "a mutator with source Generated fixes the resultant", gator: "NewExpander's mutation system mutates each resultant with source Generated before it is reviewed",
			args: append(policy, "-f", xExpand, "-f", xDeployment, "-f", xMut+"owner_generated.yaml"), code: 0, exact: new(""),
			not: []string{"warning"},
		},
		{
			name: "a mutator with source Generated leaves real objects", gator: "match.source: Generated mutators apply only to expanded resources",
			args: append(policy, "-f", xExpand, "-f", xDeployment, "-f", xDir+"pod.yaml", "-f", xMut+"owner_generated.yaml"), code: 1,
			stdout: []string{`v1/Pod lonely: ["pods-need-owner"] Message: "you must provide labels: {\"owner\"}"`}, not: []string{"Deployment"},
		},
		{
			name: "a mutator with source Original leaves the resultant", gator: "match.source: Original mutators do not apply to expanded resources",
			args: append(policy, "-f", xExpand, "-f", xDeployment, "-f", xDir+"pod.yaml", "-f", xMut+"owner_original.yaml"), code: 1,
			stdout: []string{`apps/v1/Deployment nginx-deployment: ["pods-need-owner"] Message: "[Implied by expand-deployments] you must provide labels`}, not: []string{"Pod lonely"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.check(t) })
	}
	t.Run("-o yaml", func(t *testing.T) {
		code, out, _ := run(t, "", append(policy, "-o", "yaml", "-f", xExpand, "-f", xDeployment)...)
		var doc []map[string]any
		if err := yaml.Unmarshal([]byte(out), &doc); code != 1 || err != nil || len(doc) != 1 {
			t.Fatalf("exit %d, %v: want one result\n%s", code, err, out)
		}
		res, _ := doc[0]["result"].(map[string]any)
		if res["msg"] != `[Implied by expand-deployments] you must provide labels: {"owner"}` {
			t.Errorf(".[0].result.msg = %v", res["msg"])
		}
		if vo, _ := doc[0]["violatingObject"].(map[string]any); vo["kind"] != "Deployment" {
			t.Errorf(".[0].violatingObject is the %v, want the Deployment", vo["kind"])
		}
	})
	t.Run("--stats labels the resultant's", func(t *testing.T) {
		code, out, _ := run(t, "", append(policy, "--stats", "-o", "json", "-f", xExpand, "-f", xDeployment)...)
		if code != 1 || !strings.Contains(out, `"name": "Implied by"`) || !strings.Contains(out, `"value": "expand-deployments"`) {
			t.Errorf("exit %d; want stats labeled Implied by: expand-deployments (AggregateStats):\n%s", code, out)
		}
	})
}

// TestExpansionGatorVerify pins suites with expansion: to gator verify
// (pkg/gator/verify/runner.go makeTestExpander and runReview; the suites
// of test/gator/verify/suite.yaml with foo_expansion.yaml and
// foobar_expansion.yaml).
func TestExpansionGatorVerify(t *testing.T) {
	tests := []gatorCase{
		{
			name: "suites with expansion", gator: "each case's object is expanded; an AdmissionReview is not",
			args: []string{"verify", "-v", xDir + "suite.yaml"}, code: 0,
			stdout: []string{
				"    --- PASS: deployment-without-owner\t(", "    --- PASS: admission-review-not-expanded\t(",
				"    --- PASS: one-violation-each\t(", "    --- PASS: cronjob-judged-by-its-jobs-pod\t(",
				"    --- PASS: real-pod-spared\t(", "    --- PASS: deployment-spared\t(",
				"ok\ttestdata/expansion/suite.yaml\t", "\nPASS\n\n",
			},
		},
		{
			name: "mutators apply to resultants", gator: "Portcullis's mutators: apply to the case's object, then to its resultants with source Generated",
			args: []string{"verify", "-v", xMut + "suite.yaml"}, code: 0,
			stdout: []string{
				"--- PASS: generated-pods-labeled\t(", "--- PASS: original-pods-labeled\t(", "--- PASS: mutator-in-inventory\t(",
				"    --- PASS: real-pod-still-refused\t(", "    --- PASS: deployment-refused\t(", "    --- PASS: deployment-refused-without\t(",
				"ok\ttestdata/expansion-mutators/suite.yaml\t", "\nPASS\n\n",
			},
		},
		{
			name: "bad input fails its test, clearly", gator: "ReadExpansions and NewExpander errors fail the test; an expansion error fails the case",
			args: []string{"verify", xBad + "bad_suite.yaml"}, code: 1,
			stdout: []string{
				"--- FAIL: missing-expansion\t(", `  reading ExpansionTemplate from "testdata/expansion-bad/no-such-expansion.yaml": open testdata/expansion-bad/no-such-expansion.yaml: no such file or directory` + "\n",
				"--- FAIL: not-an-expansion\t(", `  not an Expansion Template: "testdata/expansion/pod.yaml": it holds v1 Pod "lonely"` + "\n",
				"--- FAIL: cycle\t(", "  error upserting template expand-pods (testdata/expansion-bad/expand_cycle.yaml#2): template forms expansion cycle: expand-cronjobs, expand-jobs, expand-pods\n",
				"    --- FAIL: deployment\t(", `        ../expansion/deployment.yaml: expanding Deployment "nginx-deployment": ExpansionTemplate "expand-pod-templates": templateSource not found: Deployment "nginx-deployment" has no field spec.podTemplate` + "\n",
				"--- FAIL: missing-source\t(", "FAIL\ttestdata/expansion-bad/bad_suite.yaml\t", "\nFAIL\n\n",
			},
			not:    []string{"--- FAIL: generated-kind-unjudged"},
			stderr: []string{`warning: testdata/expansion-bad/bad_suite.yaml: test "generated-kind-unjudged": ExpansionTemplate "expand-to-configmaps": spec.generatedGVK v1 ConfigMap is matched by no constraint`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.check(t) })
	}
	t.Run("junit", func(t *testing.T) {
		code, out, _ := run(t, "", "verify", "-o", "junit", xBad+"bad_suite.yaml")
		r := parseJUnit(t, out)
		if code != 1 || r.Failures != 4 {
			t.Errorf("exit %d, %d failures; want 1 and the 4 failing tests:\n%s", code, r.Failures, out)
		}
	})
}

// basicPod is gator expand's output for the basic-expansion fixture
// without mutators (test/gator/expand/fixtures/.../output.yaml).
const basicPod = `apiVersion: v1
kind: Pod
metadata:
  labels:
    app: nginx
  name: nginx-deployment-pod
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: nginx-deployment
    uid: ""
spec:
  containers:
  - args:
    - /bin/sh
    image: nginx:1.14.2
    name: nginx
    ports:
    - containerPort: 80
`

// mutatedPod is basicPod as gator expand prints it with the mutators of
// its basic-expansion fixture (test/gator/expand/fixtures/basic-expansion):
// imagePullPolicy (source Generated), the tag latest (source All), the
// annotation owner (source Generated, scope Namespaced); here also a
// mutator for Original objects and one for CREATE only, which it lacks.
const mutatedPod = `apiVersion: v1
kind: Pod
metadata:
  annotations:
    owner: admin
  labels:
    app: nginx
  name: nginx-deployment-pod
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: nginx-deployment
    uid: ""
spec:
  containers:
  - args:
    - /bin/sh
    image: nginx:latest
    imagePullPolicy: Always
    name: nginx
    ports:
    - containerPort: 80
`

// TestExpand pins `portcullis expand` to `gator expand`
// (cmd/gator/expand/expand.go and website/docs/gator.md): its flags (-n
// filename, -f format, -o outputfile), yaml.v2 YAML or four-space JSON
// joined by "---", sorted by name+apiVersion+kind descending, printed with
// Println; errors on stderr with exit 1.
func TestExpand(t *testing.T) {
	tests := []gatorCase{
		{
			name: "yaml by default", gator: "resourcesToString with yaml.v2, then fmt.Println",
			args: []string{"expand", "-n", xExpand, "-n", xDeployment}, code: 0, exact: new(basicPod + "\n"),
		},
		{
			name: "a directory", gator: "--filename may name a directory",
			args: []string{"expand", "--filename=testdata/expansion/", "--format=yaml"}, code: 0,
			stdout: []string{"name: nginx-deployment-pod\n", "name: owned-deployment-pod\n", "name: nightly-job\n", "name: nightly-job-pod\n"},
		},
		{
			name: "stdin", gator: "ReadSources reads stdin like gator test",
			stdin: readTestdata(t, xExpand) + "\n---\n" + readTestdata(t, xDeployment), args: []string{"expand"}, code: 0, exact: new(basicPod + "\n"),
		},
		{
			name: "json, sorted, joined by ---", gator: `json.MarshalIndent(r, "", "    "), joined by "---\n", sortUnstructs descending`,
			args: []string{"expand", "-n", xDir + "expand_cronjobs_jobs.yaml", "-n", xDir + "cronjob.yaml", "-f", "json"}, code: 0,
			stdout: []string{"{\n    \"apiVersion\": \"batch/v1\",\n    \"kind\": \"Job\",", "\n}---\n{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"Pod\",", "\"name\": \"nightly-job-pod\",\n        \"namespace\": \"jobs\"", "\n}\n"},
		},
		{
			name: "nothing to expand", gator: "no resultants: Println of an empty string",
			args: []string{"expand", "-n", xDeployment}, code: 0, exact: new("\n"),
		},
		{
			name: "no input", gator: `ErrFatalf("no input data identified")`,
			args: []string{"expand"}, code: 1, exact: new(""), stderr: []string{"no input data identified\n"},
		},
		{
			name: "bad format", gator: `"unrecognized value for %s flag: %s" (-f is --format)`,
			args: []string{"expand", "-f", xDeployment}, code: 1, exact: new(""),
			stderr: []string{"unrecognized value for format flag: testdata/expansion/deployment.yaml (-f is --format, json or yaml, as in gator expand; give files with -n/--filename)"},
		},
		{
			name: "missing file", gator: `ErrFatalf("reading: %v")`,
			args: []string{"expand", "-n", xDir + "nope.yaml"}, code: 1, stderr: []string{`reading: reading from filenames: stat on path "testdata/expansion/nope.yaml"`},
		},
		{
			name: "a cycle", gator: `"error expanding resources: %v" of NewExpander's "error upserting template"`,
			args: []string{"expand", "-n", xBad + "expand_cycle.yaml", "-n", xDir + "cronjob.yaml"}, code: 1, exact: new(""),
			stderr: []string{"error expanding resources: error creating expander: error upserting template expand-pods (testdata/expansion-bad/expand_cycle.yaml#2): template forms expansion cycle"},
		},
		{
			name: "templateSource missing", gator: `"error expanding resource %s"`,
			args: []string{"expand", "-n", xBad + "expand_missing_source.yaml", "-n", xDeployment}, code: 1, exact: new(""),
			stderr: []string{`error expanding resources: error expanding resource nginx-deployment (testdata/expansion/deployment.yaml): ExpansionTemplate "expand-pod-templates": templateSource not found: Deployment "nginx-deployment" has no field spec.podTemplate`},
		},
		{
			name: "kind misspelled", gator: "isExpansion checks the group and kind ExpansionTemplate: anything else is an ordinary object, nothing expanded, exit 0 (portcullis warns)",
			stdin: strings.Replace(readTestdata(t, xExpand), "kind: ExpansionTemplate\n", "kind: ExpansionTemplates\n", 1) + "\n---\n" + readTestdata(t, xDeployment),
			args:  []string{"expand"}, code: 0, exact: new("\n"),
			stderr: []string{`warning: <stdin>#0: ExpansionTemplates "expand-deployments" is not an ExpansionTemplate (kind ExpansionTemplate in expansion.gatekeeper.sh), and is taken for an ordinary object`},
		},
		{
			name: "version not served", gator: "the template is converted whatever its version (portcullis warns: Gatekeeper's CRD serves v1alpha1 and v1beta1)",
			stdin: strings.Replace(readTestdata(t, xExpand), "expansion.gatekeeper.sh/v1alpha1", "expansion.gatekeeper.sh/v1", 1) + "\n---\n" + readTestdata(t, xDeployment),
			args:  []string{"expand"}, code: 0, exact: new(basicPod + "\n"),
			stderr: []string{`warning: <stdin>#0: ExpansionTemplate "expand-deployments": apiVersion expansion.gatekeeper.sh/v1 is not served by Gatekeeper's CRD (expansion.gatekeeper.sh/v1alpha1 and v1beta1); the template is read all the same`},
		},
		{
			name: "OCI images refused", gator: "-i/--image (not supported here: said in --help)",
			args: []string{"expand", "-i", "ghcr.io/x/y:1", "-n", xExpand}, code: 1, stderr: []string{"OCI image inputs (-i/--image) are not supported"},
		},
		{
			name: "mutators apply to the resultant", gator: "test/gator/expand basic-expansion: Generated and All mutators change the Pod, Original ones and CREATE-only ones do not",
			args: []string{
				"expand", "-n", xExpand, "-n", xDeployment, "-n", xDir + "assign_mutator.yaml", "-n", xMut + "tag_latest.yaml",
				"-n", xMut + "annotate_generated.yaml", "-n", xMut + "owner_original.yaml", "-n", xMut + "create_only.yaml",
			},
			code: 0, exact: new(mutatedPod + "\n"),
		},
		{
			name: "the object expanded is mutated with no operation", gator: "Expander.Expand mutates the base with a Mutable that has no Operation: a CREATE-only mutator does not apply",
			args: []string{"expand", "-n", xExpand, "-n", xDeployment, "-n", xMut + "create_only_deployment.yaml"}, code: 0, exact: new(basicPod + "\n"),
		},
		{
			name: "the namespace given is read", gator: "test/gator/expand expand-with-ns: the resultant is in its parent's Namespace, which namespaceSelector reads",
			args: []string{"expand", "-n", xExpand, "-n", xMut + "team_a.yaml"}, code: 0,
			stdout: []string{"  labels:\n    app: api\n    team: a\n  name: api-pod\n  namespace: team-a\n"},
		},
		{
			name: "a mutator that does not compile", gator: `"error parsing resources": the mutator is refused, exit 1`,
			stdin: "apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata: {name: bad}\nspec: {location: 'spec.containers[name: *', parameters: {assign: {value: x}}}\n",
			args:  []string{"expand", "-n", xExpand, "-n", xDeployment}, code: 1, exact: new(""),
			stderr: []string{`error expanding resources: <stdin>: Assign "bad": `},
		},
		{
			name: "help", gator: "gator expand's flags",
			args: []string{"expand", "--help"}, code: 0,
			stdout: []string{"-n, --filename", "-f, --format", "-o, --outputfile", "-i, --image", "--plain-http", "-d, --tempdir"},
		},
		{
			name: "arguments refused", gator: "cobra.ExactArgs(0)",
			args: []string{"expand", "manifest.yaml"}, code: 1, stderr: []string{"unknown command"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.check(t) })
	}
	t.Run("outputfile", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "out.yaml")
		code, out, errOut := run(t, "", "expand", "-n", xExpand, "-n", xDeployment, "-o", p)
		if code != 0 || out != "Writing output to file: "+p+"\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != basicPod {
			t.Errorf("file = %q, %v; want gator's output without Println's newline", b, err)
		}
	})
	t.Run("json parses back", func(t *testing.T) {
		_, out, _ := run(t, "", "expand", "-n", xExpand, "-n", xDeployment, "-f", "json")
		var pod map[string]any
		if err := json.Unmarshal([]byte(out), &pod); err != nil || pod["kind"] != "Pod" {
			t.Errorf("not the Pod as JSON: %v\n%s", err, out)
		}
	})
}
