package audit_test

import (
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
	"github.com/portcullis-dev/portcullis/audit/policyreport"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestReports: one run writes one PolicyReport per namespace with
// violations and a ClusterPolicyReport, whose results equal, constraint by
// constraint, each status.totalViolations, with the wg-policy mapping of
// enforcement actions, the severity and category, and right summaries;
// kubectl lists them; a run that finds the same writes nothing; a fixed
// object drops out on the next run; a namespace whose results vanish has
// its report emptied, then deleted, and its violation counts at 0; a
// deleted namespace's report goes.
func TestReports(t *testing.T) {
	const nsA, nsB = "repmain-a", "repmain-b"
	testenv.EnsureNamespace(t, env.Client, nsA, nil)
	testenv.EnsureNamespace(t, env.Client, nsB, map[string]string{"team": "b"})
	configMaps(t, nsA, "bad", 3, nil)
	configMaps(t, nsA, "good", 2, map[string]string{"owner": "me"})
	configMaps(t, nsB, "bad", 2, nil)
	apply(t, titledTemplate("ReportsLabel", "Required Label"))
	cs := apply(t, withSeverity(strings.Replace(constraint("ReportsLabel", "deny-owner", nsA, "deny"), "namespaces: [repmain-a]", "namespaces: [repmain-a, repmain-b]", 1), "High")+"---\n"+
		constraint("ReportsLabel", "warn-owner", nsA, "warn")+"---\n"+
		withSeverity(constraint("ReportsLabel", "dryrun-owner", nsB, "dryrun"), "not-a-severity")+"---\n"+
		`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: ReportsLabel
metadata:
  name: ns-team
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [Namespace]}]
    name: "repmain-*"
  parameters:
    label: team
`)
	for _, c := range cs {
		waitEnforced(t, c)
	}
	a := newAuditor(t, reportOptions(t), nil)
	rep := runOnce(t, a)
	if rep.Reports.API != policyreport.WGPolicy || rep.Reports.Errors != 0 || rep.Reports.Writes < 3 {
		t.Fatalf("reports: %+v, want wgpolicyk8s.io written without errors", rep.Reports)
	}
	first := rep.Start

	// Constraint by constraint, the reports hold what the statuses count.
	results := append(allResults(t, policyReports, nsA, nsB), allResults(t, clusterPolicyReports, "")...)
	for _, name := range []string{"deny-owner", "warn-owner", "dryrun-owner", "ns-team"} {
		s := readStatus(t, "ReportsLabel", name)
		if got := count(results, "ReportsLabel/"+name, ""); int64(got) != s.total || s.total == 0 {
			t.Errorf("%s: %d results in the reports, status.totalViolations %d", name, got, s.total)
		}
	}
	a1, b1 := only(t, nsReports(t, nsA), nsA), only(t, nsReports(t, nsB), nsB)
	checkSummaries(t, map[string]report{nsA: a1, nsB: b1})
	if want := (v1alpha2.PolicyReportSummary{Fail: 3, Warn: 3}); a1.summary != want {
		t.Errorf("%s: summary %+v, want %+v", nsA, a1.summary, want)
	}
	if want := (v1alpha2.PolicyReportSummary{Fail: 2, Skip: 2}); b1.summary != want {
		t.Errorf("%s: summary %+v, want %+v", nsB, b1.summary, want)
	}
	if a1.meta.Labels[policyreport.LabelManagedBy] != policyreport.ManagedBy {
		t.Errorf("labels %v", a1.meta.Labels)
	}
	cluster := readReports(t, clusterPolicyReports, "")
	cr, ok := cluster[policyreport.ReportName]
	if !ok || count(cr.results, "ReportsLabel/ns-team", v1alpha2.ResultFail) != 1 ||
		strings.Join(subjects(cr.results, "ReportsLabel/ns-team"), ",") != "/"+nsA {
		t.Errorf("ClusterPolicyReport %s: %+v, want one fail for Namespace %s", policyreport.ReportName, cr.results, nsA)
	}
	uids := map[string]string{}
	for _, cm := range listConfigMaps(t, nsA) {
		uids[cm.Name] = string(cm.UID)
	}
	for _, r := range a1.results {
		wantResult, wantSeverity, wantAction := v1alpha2.ResultFail, v1alpha2.SeverityHigh, ""
		if r.Policy == "ReportsLabel/warn-owner" {
			wantResult, wantSeverity = v1alpha2.ResultWarn, ""
		}
		sub := r.Subjects[0]
		if r.Result != wantResult || r.Severity != wantSeverity || r.Properties[policyreport.PropertyEnforcementAction] != wantAction ||
			r.Rule != "reportslabel" || r.Category != "Required Label" || r.Source != "portcullis" ||
			r.Timestamp.Seconds != first.Unix() || len(r.Subjects) != 1 ||
			sub.APIVersion != "v1" || sub.Kind != "ConfigMap" || sub.Namespace != nsA || string(sub.UID) != uids[sub.Name] ||
			!strings.Contains(r.Description, "has no label owner") {
			t.Errorf("%s: result %+v", nsA, r)
		}
	}
	for _, r := range b1.results {
		if r.Policy == "ReportsLabel/dryrun-owner" && (r.Result != v1alpha2.ResultSkip || r.Severity != "" ||
			r.Properties[policyreport.PropertyEnforcementAction] != "dryrun") {
			t.Errorf("%s: dryrun result %+v, want skip, no severity (invalid annotation), enforcementAction dryrun", nsB, r)
		}
	}
	if got := gauge(t, "portcullis_audit_violations", map[string]string{"constraint_kind": "ReportsLabel",
		"constraint_name": "deny-owner", "enforcement_action": "deny", "namespace": nsA}); got != 3 {
		t.Errorf("portcullis_audit_violations{deny-owner, %s} = %v, want 3", nsA, got)
	}

	out := env.Kubectl(t, "get", "polr", "-A")
	for _, want := range []string{`(?m)^repmain-a\s+portcullis-audit\s+0\s+3\s+3\s+0\s+0\s`, `(?m)^repmain-b\s+portcullis-audit\s+0\s+2\s+0\s+0\s+2\s`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("kubectl get polr -A does not match %s:\n%s", want, out)
		}
	}

	// The same results: nothing written.
	time.Sleep(1100 * time.Millisecond) // a later second for timestamps
	runOnce(t, a)
	a2, b2 := only(t, nsReports(t, nsA), nsA), only(t, nsReports(t, nsB), nsB)
	if a2.meta.ResourceVersion != a1.meta.ResourceVersion || b2.meta.ResourceVersion != b1.meta.ResourceVersion {
		t.Errorf("unchanged reports were written: resourceVersions %s→%s, %s→%s",
			a1.meta.ResourceVersion, a2.meta.ResourceVersion, b1.meta.ResourceVersion, b2.meta.ResourceVersion)
	}

	// A fixed object drops out; the other results keep their timestamps.
	label(t, nsA, "bad-0000", "owner", "x")
	runOnce(t, a)
	a3 := only(t, nsReports(t, nsA), nsA)
	if got := strings.Join(subjects(a3.results, "ReportsLabel/deny-owner"), ","); got != nsA+"/bad-0001,"+nsA+"/bad-0002" {
		t.Errorf("deny-owner results in %s after the fix: %s", nsA, got)
	}
	if s := readStatus(t, "ReportsLabel", "deny-owner"); int64(count(allResults(t, policyReports, nsA, nsB), "ReportsLabel/deny-owner", "")) != s.total {
		t.Errorf("after the fix, status.totalViolations %d differs from the reports", s.total)
	}
	for _, r := range a3.results {
		if r.Timestamp.Seconds != first.Unix() {
			t.Errorf("result %s %s got timestamp %d, want the first run's %d", r.Policy, r.Subjects[0].Name, r.Timestamp.Seconds, first.Unix())
		}
	}

	// A namespace whose results vanish: emptied, then deleted; its
	// violation counts read 0 (review finding 10).
	labelAll(t, nsB, "owner", "x")
	runOnce(t, a)
	for _, c := range [][2]string{{"deny-owner", "deny"}, {"dryrun-owner", "dryrun"}} {
		if got := gauge(t, "portcullis_audit_violations", map[string]string{"constraint_kind": "ReportsLabel",
			"constraint_name": c[0], "enforcement_action": c[1], "namespace": nsB}); got != 0 {
			t.Errorf("portcullis_audit_violations{%s, %s} = %v after its fix, want 0", c[0], nsB, got)
		}
	}
	b4 := only(t, nsReports(t, nsB), nsB)
	if len(b4.results) != 0 || b4.summary != (v1alpha2.PolicyReportSummary{}) {
		t.Errorf("%s after its fix: %d results, summary %+v; want an empty report", nsB, len(b4.results), b4.summary)
	}
	runOnce(t, a)
	if r := nsReports(t, nsB); len(r) != 0 {
		t.Errorf("%s: reports %v after a second run without results, want none", nsB, keys(r))
	}

	// A deleted namespace's report goes (envtest has no namespace
	// controller: the Namespace stays Terminating, with its objects).
	if err := env.Client.Delete(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsA}}); err != nil {
		t.Fatal(err)
	}
	runOnce(t, a)
	if r := nsReports(t, nsA); len(r) != 0 {
		t.Errorf("%s: reports %v after the namespace was deleted, want none", nsA, keys(r))
	}
}

// TestReportsPass: pass results only with ReportsPass: one per constraint
// an object matched without violating it.
func TestReportsPass(t *testing.T) {
	const ns = "rep-pass"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "bad", 2, nil)
	configMaps(t, ns, "good", 3, map[string]string{"owner": "me"})
	apply(t, requiredLabel("ReportsPass"))
	waitEnforced(t, apply(t, constraint("ReportsPass", "owner", ns, "deny"))[0])

	runOnce(t, newAuditor(t, reportOptions(t), nil))
	r := only(t, nsReports(t, ns), ns)
	if r.summary != (v1alpha2.PolicyReportSummary{Fail: 2}) || len(r.results) != 2 {
		t.Errorf("without pass results: summary %+v, %d results; want 2 fails only", r.summary, len(r.results))
	}

	opts := reportOptions(t)
	opts.ReportsPass = true
	runOnce(t, newAuditor(t, opts, nil))
	r = only(t, nsReports(t, ns), ns)
	checkSummaries(t, map[string]report{ns: r})
	if r.summary != (v1alpha2.PolicyReportSummary{Pass: 3, Fail: 2}) {
		t.Errorf("with pass results: summary %+v, want 3 pass and 2 fail", r.summary)
	}
	var passed []string
	for _, res := range r.results {
		if res.Result == v1alpha2.ResultPass {
			passed = append(passed, res.Subjects[0].Name)
			if res.Description != "" || res.Policy != "ReportsPass/owner" {
				t.Errorf("pass result %+v", res)
			}
		}
	}
	if got := strings.Join(passed, ","); got != "good-0000,good-0001,good-0002" {
		t.Errorf("pass results for %s, want the good ConfigMaps", got)
	}
}

// TestReportsSplit: a namespace with more results than a report holds
// gets numbered reports, and loses the ones it no longer needs.
func TestReportsSplit(t *testing.T) {
	const ns = "rep-split"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "bad", 5, nil)
	apply(t, requiredLabel("ReportsSplit"))
	waitEnforced(t, apply(t, constraint("ReportsSplit", "owner", ns, "deny"))[0])
	opts := reportOptions(t)
	opts.ReportsMaxResults = 2
	a := newAuditor(t, opts, nil)
	runOnce(t, a)
	reports := nsReports(t, ns)
	checkSummaries(t, reports)
	var names []string
	for _, name := range keys(reports) {
		names = append(names, name+":"+strings.Join(subjects(reports[name].results, "ReportsSplit/owner"), ","))
	}
	want := "portcullis-audit:rep-split/bad-0000,rep-split/bad-0001 portcullis-audit-2:rep-split/bad-0002,rep-split/bad-0003 portcullis-audit-3:rep-split/bad-0004"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("reports:\n%s\nwant\n%s", got, want)
	}
	// The same results again: no report is written (the writer knows it
	// from their digest, without building them).
	versions := func() map[string]string {
		out := map[string]string{}
		for name, r := range nsReports(t, ns) {
			out[name] = r.meta.ResourceVersion
		}
		return out
	}
	before := versions()
	rep := runOnce(t, a)
	if after := versions(); !maps.Equal(before, after) {
		t.Errorf("unchanged results rewrote reports: versions %v, then %v", before, after)
	}
	if rep.Reports.Unchanged < 3 || rep.Reports.Digested < 1 {
		t.Errorf("%d reports unchanged, %d namespaces known so from their digest; want at least this namespace's 3 and 1",
			rep.Reports.Unchanged, rep.Reports.Digested)
	}
	// A report deleted behind the audit's back: the same results are not
	// taken as written, and the report comes back.
	if err := dynamic.NewForConfigOrDie(env.Config).Resource(policyReports).Namespace(ns).
		Delete(t.Context(), policyreport.ReportName+"-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	runOnce(t, a)
	if r, ok := nsReports(t, ns)[policyreport.ReportName+"-2"]; !ok ||
		strings.Join(subjects(r.results, "ReportsSplit/owner"), ",") != "rep-split/bad-0002,rep-split/bad-0003" {
		t.Errorf("the deleted report is not written again: %v", keys(nsReports(t, ns)))
	}
	for _, name := range []string{"bad-0000", "bad-0002", "bad-0004"} {
		label(t, ns, name, "owner", "x")
	}
	runOnce(t, a)
	reports = nsReports(t, ns)
	if r, ok := reports[policyreport.ReportName]; len(reports) != 1 || !ok ||
		strings.Join(subjects(r.results, "ReportsSplit/owner"), ",") != "rep-split/bad-0001,rep-split/bad-0003" {
		t.Errorf("after fixing 3 of 5: reports %v", reports)
	}
}

// listConfigMaps lists a namespace's ConfigMaps.
func listConfigMaps(t *testing.T, ns string) []corev1.ConfigMap {
	t.Helper()
	list := &corev1.ConfigMapList{}
	if err := env.Client.List(t.Context(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// label sets a label on one ConfigMap.
func label(t *testing.T, ns, name, key, value string) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatal(err)
	}
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[key] = value
	u.SetLabels(labels)
	if err := env.Client.Update(t.Context(), u); err != nil {
		t.Fatal(err)
	}
}
