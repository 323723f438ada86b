package audit_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/audit/policyreport"
)

var (
	policyReports        = v1alpha2.GroupVersion.WithResource("policyreports")
	clusterPolicyReports = v1alpha2.GroupVersion.WithResource("clusterpolicyreports")
)

// reportOptions are testOptions writing PolicyReports, spilling results
// into the test's directory.
func reportOptions(t *testing.T) audit.Options {
	o := testOptions()
	o.Reports = audit.ReportsPolicyReport
	o.ReportsSpillDirs = []string{t.TempDir()}
	return o
}

// titledTemplate is requiredLabel with the library's title annotation.
func titledTemplate(kind, title string) string {
	name := strings.ToLower(kind)
	return strings.Replace(requiredLabel(kind), "  name: "+name+"\n",
		"  name: "+name+"\n  annotations:\n    metadata.gatekeeper.sh/title: "+title+"\n", 1)
}

// withSeverity adds the severity annotation to a constraint's YAML.
func withSeverity(constraintYAML, severity string) string {
	return strings.Replace(constraintYAML, "metadata:\n", "metadata:\n  annotations:\n    policy.portcullis.dev/severity: "+severity+"\n", 1)
}

// report is a PolicyReport or ClusterPolicyReport as read back.
type report struct {
	meta    metav1.ObjectMeta
	summary v1alpha2.PolicyReportSummary
	results []v1alpha2.PolicyReportResult
}

// readReports reads the audit's reports of a namespace ("" for the
// cluster reports) in gvr, by name.
func readReports(t *testing.T, gvr schema.GroupVersionResource, ns string) map[string]report {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(env.Config)
	list, err := dyn.Resource(gvr).Namespace(ns).List(t.Context(), metav1.ListOptions{
		LabelSelector: policyreport.LabelManagedBy + "=" + policyreport.ManagedBy,
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("listing %s in %q: %v", gvr.Resource, ns, err)
	}
	out := map[string]report{}
	for i := range list.Items {
		var r v1alpha2.PolicyReport // the fields every report kind has
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(list.Items[i].Object, &r); err != nil {
			t.Fatalf("decoding %s: %v", list.Items[i].GetName(), err)
		}
		out[r.Name] = report{meta: r.ObjectMeta, summary: r.Summary, results: r.Results}
	}
	return out
}

// nsReports reads a namespace's PolicyReports.
func nsReports(t *testing.T, ns string) map[string]report {
	t.Helper()
	return readReports(t, policyReports, ns)
}

// only returns the one report of a namespace, failing otherwise.
func only(t *testing.T, reports map[string]report, ns string) report {
	t.Helper()
	r, ok := reports[policyreport.ReportName]
	if len(reports) != 1 || !ok {
		t.Fatalf("namespace %q has reports %v, want only %s", ns, keys(reports), policyreport.ReportName)
	}
	return r
}

func keys(m map[string]report) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// count counts results of a policy with an outcome ("" for any but pass).
func count(results []v1alpha2.PolicyReportResult, policy string, outcome v1alpha2.PolicyResult) int {
	n := 0
	for _, r := range results {
		if r.Policy == policy && (r.Result == outcome || outcome == "" && r.Result != v1alpha2.ResultPass) {
			n++
		}
	}
	return n
}

// summarize counts results by outcome, as a report's summary should.
func summarize(results []v1alpha2.PolicyReportResult) v1alpha2.PolicyReportSummary {
	var s v1alpha2.PolicyReportSummary
	for _, r := range results {
		switch r.Result {
		case v1alpha2.ResultPass:
			s.Pass++
		case v1alpha2.ResultFail:
			s.Fail++
		case v1alpha2.ResultWarn:
			s.Warn++
		case v1alpha2.ResultError:
			s.Error++
		case v1alpha2.ResultSkip:
			s.Skip++
		}
	}
	return s
}

// checkSummaries checks every report's summary against its results.
func checkSummaries(t *testing.T, reports map[string]report) {
	t.Helper()
	for name, r := range reports {
		if want := summarize(r.results); r.summary != want {
			t.Errorf("%s/%s: summary %+v, its results count %+v", r.meta.Namespace, name, r.summary, want)
		}
	}
}

// subjects lists the resources of results of a policy, as ns/name.
func subjects(results []v1alpha2.PolicyReportResult, policy string) []string {
	var out []string
	for _, r := range results {
		if r.Policy == policy && len(r.Subjects) > 0 {
			out = append(out, fmt.Sprintf("%s/%s", r.Subjects[0].Namespace, r.Subjects[0].Name))
		}
	}
	slices.Sort(out)
	return out
}

// allResults gathers the results of several namespaces' reports.
func allResults(t *testing.T, gvr schema.GroupVersionResource, namespaces ...string) []v1alpha2.PolicyReportResult {
	t.Helper()
	var out []v1alpha2.PolicyReportResult
	for _, ns := range namespaces {
		for _, r := range readReports(t, gvr, ns) {
			out = append(out, r.results...)
		}
	}
	return out
}
