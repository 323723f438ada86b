package audit_test

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/audit/policyreport"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

const reportGolden = "testdata/policyreport.golden.yaml"

var update = flag.Bool("update", false, "rewrite "+reportGolden+" from the report written")

// TestReportGolden: one report as the API server stores it, with what
// changes from run to run (UIDs, timestamps, the hash) replaced, equals
// testdata/policyreport.golden.yaml; that YAML passes the CRD's validation
// server-side (the wg-policy prototype's v1alpha2 schema), and the same
// report with a result or a severity the schema does not allow is refused.
func TestReportGolden(t *testing.T) {
	const ns = "rep-golden"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "bad", 2, nil)
	apply(t, titledTemplate("ReportsGolden", "Required Label"))
	for _, c := range apply(t, withSeverity(constraint("ReportsGolden", "owner", ns, "deny"), "critical")+"---\n"+
		constraint("ReportsGolden", "owner-dryrun", ns, "dryrun")) {
		waitEnforced(t, c)
	}
	runOnce(t, newAuditor(t, reportOptions(t), nil))

	dyn := dynamic.NewForConfigOrDie(env.Config).Resource(policyReports).Namespace(ns)
	u, err := dyn.Get(t.Context(), policyreport.ReportName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	normalize(u)
	got, err := yaml.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(reportGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(reportGolden)
	if err != nil {
		t.Fatalf("%v (go test ./audit/ -run TestReportGolden -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the report differs from %s (-update rewrites it):\n%s", reportGolden, got)
	}

	golden := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(want, &golden.Object); err != nil {
		t.Fatal(err)
	}
	golden.SetName("golden-copy")
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	if _, err := dyn.Create(t.Context(), golden, dryRun); err != nil {
		t.Errorf("the CRD refuses %s: %v", reportGolden, err)
	}
	for field, value := range map[string]string{"result": "failed", "severity": "urgent"} {
		bad := golden.DeepCopy()
		results, _, _ := unstructured.NestedSlice(bad.Object, "results")
		results[0].(map[string]any)[field] = value
		_ = unstructured.SetNestedSlice(bad.Object, results, "results")
		_, err := dyn.Create(t.Context(), bad, dryRun)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "results[0]."+field) {
			t.Errorf("a report with %s %q: error %v, want it refused as invalid", field, value, err)
		}
	}
}

// normalize drops what the API server sets and replaces what changes from
// run to run.
func normalize(u *unstructured.Unstructured) {
	for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	annotations := u.GetAnnotations()
	if _, ok := annotations[policyreport.AnnotationHash]; ok {
		annotations[policyreport.AnnotationHash] = "<hash>"
		u.SetAnnotations(annotations)
	}
	results, _, _ := unstructured.NestedSlice(u.Object, "results")
	for _, r := range results {
		m := r.(map[string]any)
		m["timestamp"] = map[string]any{"seconds": int64(0), "nanos": int64(0)}
		for _, s := range m["resources"].([]any) {
			s.(map[string]any)["uid"] = "<uid>"
		}
	}
	_ = unstructured.SetNestedSlice(u.Object, results, "results")
}
