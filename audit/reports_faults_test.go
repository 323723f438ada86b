package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/audit/policyreport"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// refuseReports is a ValidatingAdmissionPolicy that refuses the
// PolicyReports of namespace rep-refused.
const refuseReports = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: refuse-reports
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [wgpolicyk8s.io]
      apiVersions: ["*"]
      operations: [CREATE, UPDATE]
      resources: [policyreports]
  validations:
  - expression: "object.metadata.namespace != 'rep-refused'"
    message: no reports in rep-refused
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: refuse-reports
spec:
  policyName: refuse-reports
  validationActions: [Deny]
`

// lines is a logger that keeps its lines.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) add(_, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, args)
}

func (l *lines) find(parts ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.all {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return line
		}
	}
	return ""
}

// TestReportsRefused: a report the API server refuses is logged with its
// name and counted; the other reports and the constraint's status are
// written.
func TestReportsRefused(t *testing.T) {
	const refused, ok = "rep-refused", "rep-ok"
	testenv.EnsureNamespace(t, env.Client, refused, nil)
	testenv.EnsureNamespace(t, env.Client, ok, nil)
	configMaps(t, refused, "bad", 1, nil)
	configMaps(t, ok, "bad", 1, nil)
	apply(t, requiredLabel("ReportsRefused"))
	waitEnforced(t, apply(t, strings.Replace(constraint("ReportsRefused", "owner", refused, "deny"),
		"namespaces: [rep-refused]", "namespaces: [rep-refused, rep-ok]", 1))[0])
	apply(t, refuseReports)

	var log lines
	a, err := audit.New(env.Config, mgr.Engine(), reportOptions(t), funcr.New(log.add, funcr.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	before := counter(t, "portcullis_audit_report_errors_total", nil)
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha2.GroupVersion.WithKind("PolicyReport"))
	u.SetNamespace(refused)
	u.SetName(policyreport.ReportName)
	var rep audit.Report
	eventually(t, "the policy to refuse the report", func(ctx context.Context) (bool, error) {
		// Until the policy takes effect, the report is written: delete it.
		if err := env.Client.Delete(ctx, u); client.IgnoreNotFound(err) != nil && !meta.IsNoMatchError(err) {
			return false, err
		}
		var err error
		rep, err = a.RunOnce(ctx)
		return err == nil && rep.Reports.Errors > 0, fmt.Errorf("reports %+v, run error %v", rep.Reports, err)
	})
	line := log.find(`"msg"="Writing a report failed"`, `"report"={"name"="portcullis-audit" "namespace"="rep-refused"}`)
	if line == "" || !strings.Contains(line, "no reports in rep-refused") {
		log.mu.Lock()
		defer log.mu.Unlock()
		t.Errorf("no log line naming the refused report and the reason; lines:\n%s", strings.Join(log.all, "\n"))
	}
	if got := counter(t, "portcullis_audit_report_errors_total", nil); got <= before {
		t.Errorf("portcullis_audit_report_errors_total %v, was %v", got, before)
	}
	if r := nsReports(t, refused); len(r) != 0 {
		t.Errorf("%s has reports %v", refused, keys(r))
	}
	if r := only(t, nsReports(t, ok), ok); r.summary.Fail != 1 {
		t.Errorf("%s: summary %+v, want 1 fail", ok, r.summary)
	}
	if cr := rep.Constraint("ReportsRefused", "owner"); cr == nil || cr.Err != nil || cr.TotalViolations != 2 {
		t.Errorf("constraint: %+v, want its status written with 2 violations", cr)
	}
	if s := readStatus(t, "ReportsRefused", "owner"); s.total != 2 || s.timestamp != rep.Start.UTC().Format("2006-01-02T15:04:05Z") {
		t.Errorf("status: totalViolations %d, auditTimestamp %s; want 2 at %s", s.total, s.timestamp, rep.Start.UTC())
	}
}

// TestReportsInterrupted: a run stopped midway leaves the reports as they
// were; the next complete run replaces them.
func TestReportsInterrupted(t *testing.T) {
	const ns = "rep-interrupted"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "bad", 3, nil)
	apply(t, requiredLabel("ReportsInterrupted"))
	waitEnforced(t, apply(t, constraint("ReportsInterrupted", "owner", ns, "deny"))[0])
	a := newAuditor(t, reportOptions(t), nil)
	runOnce(t, a)
	before := only(t, nsReports(t, ns), ns)

	labelAll(t, ns, "owner", "x")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	hooked := &hookedReviewer{Engine: mgr.Engine(), hook: onceOn(ns, "bad-0001", func(context.Context) error {
		cancel()
		return nil
	})}
	stopped := newAuditor(t, reportOptions(t), hooked)
	if _, err := stopped.RunOnce(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted run returned %v, want context.Canceled", err)
	}
	after := only(t, nsReports(t, ns), ns)
	if after.meta.ResourceVersion != before.meta.ResourceVersion || after.summary.Fail != 3 {
		t.Errorf("the interrupted run changed the report: resourceVersion %s→%s, summary %+v",
			before.meta.ResourceVersion, after.meta.ResourceVersion, after.summary)
	}
	runOnce(t, a)
	if r := only(t, nsReports(t, ns), ns); len(r.results) != 0 {
		t.Errorf("after a complete run, %d results, want none", len(r.results))
	}
}

// gadgetCRD is a kind whose list the test breaks (as widgetCRD).
var gadgetCRD = looseCRD("reports.example.com", "Gadget")

// breakGadgets makes v2 the storage and preferred version, converted from
// v1 by a webhook that is down, or (broken false) without conversion.
func breakGadgets(ctx context.Context, broken bool) error {
	return setConversion(ctx, "gadgets.reports.example.com", broken)
}

// TestReportsKeepFailedKinds: when a kind fails to list, the reports keep
// the results found for it before (with their timestamps), and replace
// the others.
func TestReportsKeepFailedKinds(t *testing.T) {
	const ns = "rep-failed-kind"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	apply(t, gadgetCRD)
	gadget := func(name string) *unstructured.Unstructured {
		return customObject("reports.example.com", "v1", "Gadget", ns, name)
	}
	eventually(t, "gadgets to be served", func(ctx context.Context) (bool, error) {
		err := env.Client.Create(ctx, gadget("g-1"))
		return err == nil, err
	})
	create(t, gadget("g-2"))
	// Repaired before g-2 is deleted.
	t.Cleanup(func() {
		ctx := context.Background()
		err := testenv.Poll{Timeout: waitTimeout}.Until(ctx, func(ctx context.Context) error {
			if err := breakGadgets(ctx, false); err != nil {
				return err
			}
			list := &unstructured.UnstructuredList{}
			list.SetAPIVersion("reports.example.com/v2")
			list.SetKind("GadgetList")
			return env.Client.List(ctx, list, client.InNamespace(ns))
		})
		if err != nil {
			t.Errorf("repairing gadgets: %v", err)
		}
	})
	configMaps(t, ns, "bad", 1, nil)
	apply(t, requiredLabel("ReportsFailedKind"))
	waitEnforced(t, apply(t, `apiVersion: constraints.gatekeeper.sh/v1beta1
kind: ReportsFailedKind
metadata:
  name: owner
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}, {apiGroups: [reports.example.com], kinds: [Gadget]}]
    namespaces: [rep-failed-kind]
  parameters:
    label: owner
`)[0])
	a := newAuditor(t, reportOptions(t), nil)
	first := runOnce(t, a)
	if got := strings.Join(subjects(only(t, nsReports(t, ns), ns).results, "ReportsFailedKind/owner"), ","); got != ns+"/bad-0000,"+ns+"/g-1,"+ns+"/g-2" {
		t.Fatalf("before the failure: results for %s", got)
	}

	if err := breakGadgets(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	disc := discovery.NewDiscoveryClientForConfigOrDie(env.Config)
	eventually(t, "gadgets to be served at v2", func(context.Context) (bool, error) {
		_, err := disc.ServerResourcesForGroupVersion("reports.example.com/v2")
		return err == nil, err
	})
	labelAll(t, ns, "owner", "x")
	eventually(t, "the gadgets' list to fail", func(ctx context.Context) (bool, error) {
		rep, err := a.RunOnce(ctx)
		return err == nil && rep.ListErrors > 0, fmt.Errorf("list errors %d, run error %v", rep.ListErrors, err)
	})
	r := only(t, nsReports(t, ns), ns)
	if got := strings.Join(subjects(r.results, "ReportsFailedKind/owner"), ","); got != ns+"/g-1,"+ns+"/g-2" {
		t.Errorf("with gadgets failing to list: results for %s; want the gadgets kept and the fixed ConfigMap gone", got)
	}
	for _, res := range r.results {
		if res.Timestamp.Seconds != first.Start.Unix() {
			t.Errorf("kept result for %s has timestamp %d, want %d", res.Subjects[0].Name, res.Timestamp.Seconds, first.Start.Unix())
		}
	}
	checkSummaries(t, map[string]report{ns: r})
}

// TestReportsOpenReports: where the openreports.io CRDs are served, the
// audit writes openreports.io Reports instead, with the same results, and
// deletes its PolicyReports.
func TestReportsOpenReports(t *testing.T) {
	const ns = "rep-openreports"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "bad", 2, nil)
	apply(t, requiredLabel("ReportsOpen"))
	waitEnforced(t, apply(t, constraint("ReportsOpen", "owner", ns, "warn"))[0])
	a := newAuditor(t, reportOptions(t), nil)
	runOnce(t, a)
	only(t, nsReports(t, ns), ns)

	reports := policyreport.OpenReports.GroupVersion.WithResource(policyreport.OpenReports.Resource)
	disc := discovery.NewDiscoveryClientForConfigOrDie(env.Config)
	// The CRDs go when the test ends (this cleanup runs after their
	// deletion): the other tests write PolicyReports.
	t.Cleanup(func() {
		err := testenv.Poll{Timeout: waitTimeout}.Until(context.Background(), func(context.Context) error {
			if _, err := disc.ServerResourcesForGroupVersion(reports.GroupVersion().String()); err == nil {
				return errors.New("still served")
			}
			return nil
		})
		if err != nil {
			t.Errorf("openreports.io CRDs deleted, but: %v", err)
		}
	})
	for _, crd := range openReportsCRDs(t) {
		create(t, crd)
	}
	eventually(t, "openreports.io to be served", func(context.Context) (bool, error) {
		_, err := disc.ServerResourcesForGroupVersion(reports.GroupVersion().String())
		return err == nil, err
	})
	rep := runOnce(t, a)
	if rep.Reports.API != policyreport.OpenReports {
		t.Fatalf("reports written in %s, want %s", rep.Reports.API, policyreport.OpenReports)
	}
	r := only(t, readReports(t, reports, ns), ns)
	if r.summary != (v1alpha2.PolicyReportSummary{Warn: 2}) || strings.Join(subjects(r.results, "ReportsOpen/owner"), ",") != ns+"/bad-0000,"+ns+"/bad-0001" {
		t.Errorf("openreports.io Report: summary %+v, results %+v", r.summary, r.results)
	}
	if old := nsReports(t, ns); len(old) != 0 {
		t.Errorf("the PolicyReports %v are still there", keys(old))
	}
}

// openReportsCRDs reads the openreports.io CRDs that the reports-api
// module ships (config/crd), the module whose types the audit writes.
func openReportsCRDs(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-m", "-f", "{{.Dir}}", "github.com/openreports/reports-api").Output()
	if err != nil {
		t.Fatalf("locating the reports-api module: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	var crds []*unstructured.Unstructured
	for _, name := range []string{"openreports.io_reports.yaml", "openreports.io_clusterreports.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, "config", "crd", name))
		if err != nil {
			t.Fatal(err)
		}
		crds = append(crds, testenv.Parse(t, string(b)))
	}
	return crds
}

// sprocketCRD is a kind whose list the test breaks part-way (as
// widgetCRD).
var sprocketCRD = looseCRD("reports.example.com", "Sprocket")

// TestReportsKeepFailedKindsPartWay: when a kind fails to list part-way,
// an object listed before the failure is in the reports once, not once as
// found again and once more as kept from the reports before.
func TestReportsKeepFailedKindsPartWay(t *testing.T) {
	const ns = "rep-failed-partway"
	const crd = "sprockets.reports.example.com"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	apply(t, sprocketCRD)
	sprocket := func(name, version string) *unstructured.Unstructured {
		return customObject("reports.example.com", version, "Sprocket", ns, name)
	}
	// s-1 and s-2 are stored at v1, which needs the webhook once broken.
	eventually(t, "sprockets to be served", func(ctx context.Context) (bool, error) {
		err := env.Client.Create(ctx, sprocket("s-1", "v1"))
		return err == nil || apierrors.IsAlreadyExists(err), err
	})
	create(t, sprocket("s-2", "v1"))
	t.Cleanup(func() { _ = setConversion(context.Background(), crd, false) }) // before the CRD is deleted
	// v2 stores, without conversion for now: s-0 is stored at v2.
	if err := setConversion(t.Context(), crd, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sprocket to be created at v2", func(ctx context.Context) (bool, error) {
		err := env.Client.Create(ctx, sprocket("s-0", "v2"))
		return err == nil || apierrors.IsAlreadyExists(err), err
	})
	apply(t, requiredLabel("ReportsPartWay"))
	waitEnforced(t, apply(t, `apiVersion: constraints.gatekeeper.sh/v1beta1
kind: ReportsPartWay
metadata:
  name: owner
spec:
  match:
    kinds: [{apiGroups: [reports.example.com], kinds: [Sprocket]}]
    namespaces: [rep-failed-partway]
  parameters:
    label: owner
`)[0])
	opts := reportOptions(t)
	opts.ChunkSize = 1 // one object a page, so that the list fails after s-0
	a := newAuditor(t, opts, nil)
	want := ns + "/s-0," + ns + "/s-1," + ns + "/s-2"
	eventually(t, "the three sprockets in the report", func(ctx context.Context) (bool, error) {
		if _, err := a.RunOnce(ctx); err != nil {
			return false, err
		}
		got := strings.Join(subjects(only(t, nsReports(t, ns), ns).results, "ReportsPartWay/owner"), ",")
		return got == want, fmt.Errorf("results for %s", got)
	})

	if err := setConversion(t.Context(), crd, true); err != nil {
		t.Fatal(err)
	}
	sprockets := schema.GroupVersionResource{Group: "reports.example.com", Version: "v2", Resource: "sprockets"}
	var rep audit.Report
	eventually(t, "the sprockets' list to fail after s-0", func(ctx context.Context) (bool, error) {
		var err error
		rep, err = a.RunOnce(ctx)
		if err != nil {
			return false, err
		}
		r := rep.Resource(sprockets)
		return r != nil && r.Err != nil && r.Objects == 1, fmt.Errorf("sprockets: %+v", r)
	})
	r := only(t, nsReports(t, ns), ns)
	if got := strings.Join(subjects(r.results, "ReportsPartWay/owner"), ","); got != want {
		t.Errorf("with sprockets failing to list after s-0: results for %s, want %s", got, want)
	}
	if r.summary.Fail != 3 {
		t.Errorf("summary %+v, want 3 fail", r.summary)
	}
	checkSummaries(t, map[string]report{ns: r})
}
