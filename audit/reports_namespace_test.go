package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/audit/policyreport"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// faultTransport answers a request with fault's response when it returns
// one, else lets the API server answer, and edits the answer with edit
// when set.
type faultTransport struct {
	next  http.RoundTripper
	fault func(*http.Request) *http.Response
	edit  func(*http.Request, *http.Response) *http.Response
}

func (f *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if resp := f.fault(req); resp != nil {
		return resp, nil
	}
	resp, err := f.next.RoundTrip(req)
	if err != nil || f.edit == nil {
		return resp, err
	}
	return f.edit(req, resp), nil
}

// faultConfig is env.Config with a faultTransport in its transport.
func faultConfig(fault func(*http.Request) *http.Response, edit func(*http.Request, *http.Response) *http.Response) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return &faultTransport{next: next, fault: fault, edit: edit}
	})
	return cfg
}

// statusResponse is the API server's answer with an error status.
func statusResponse(req *http.Request, code int, reason string) *http.Response {
	body := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected by the test","reason":"` + reason + `","code":` + strconv.Itoa(code) + `}`
	return &http.Response{
		StatusCode: code, Status: http.StatusText(code), Request: req,
		Header: http.Header{"Content-Type": []string{"application/json"}},
		Body:   io.NopCloser(strings.NewReader(body)),
	}
}

// withoutItem drops the item named name from a JSON list response.
func withoutItem(resp *http.Response, name string) *http.Response {
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	var list map[string]any
	if err == nil && json.Unmarshal(b, &list) == nil {
		items, _ := list["items"].([]any)
		kept := items[:0]
		for _, it := range items {
			meta, _ := it.(map[string]any)["metadata"].(map[string]any)
			if meta["name"] != name {
				kept = append(kept, it)
			}
		}
		list["items"] = kept
		if nb, err := json.Marshal(list); err == nil {
			b = nb
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	return resp
}

// TestReportsNamespaceUnreadable: when a Namespace cannot be read (here
// a 500 on its GET, the namespace missing from the run's list as if
// created during it), its reports are left as they are, and the failure
// is counted; it is not taken for a namespace gone.
func TestReportsNamespaceUnreadable(t *testing.T) {
	const ns = "rep-ns-unreadable"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "bad", 2, nil)
	apply(t, requiredLabel("ReportsNSUnreadable"))
	waitEnforced(t, apply(t, constraint("ReportsNSUnreadable", "owner", ns, "deny"))[0])
	runOnce(t, newAuditor(t, reportOptions(t), nil))
	before := only(t, nsReports(t, ns), ns)

	var gets atomic.Int32
	cfg := faultConfig(func(req *http.Request) *http.Response {
		if req.Method == http.MethodGet && req.URL.Path == "/api/v1/namespaces/"+ns {
			gets.Add(1)
			return statusResponse(req, http.StatusInternalServerError, "InternalError")
		}
		return nil
	}, func(req *http.Request, resp *http.Response) *http.Response {
		if req.Method == http.MethodGet && req.URL.Path == "/api/v1/namespaces" && resp.StatusCode == http.StatusOK {
			return withoutItem(resp, ns)
		}
		return resp
	})
	a, err := audit.New(cfg, mgr.Engine(), reportOptions(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	labelAll(t, ns, "owner", "x") // the run would empty the report
	rep := runOnce(t, a)
	if gets.Load() == 0 {
		t.Fatal("the run never read the Namespace: the test injects nothing")
	}
	if rep.NamespaceErrors != 1 || rep.Reports.Errors == 0 {
		t.Errorf("namespace errors %d, report errors %d; want 1 and some", rep.NamespaceErrors, rep.Reports.Errors)
	}
	after := only(t, nsReports(t, ns), ns)
	if after.meta.ResourceVersion != before.meta.ResourceVersion || after.summary.Fail != 2 {
		t.Errorf("the report changed though its namespace could not be read: resourceVersion %s→%s, summary %+v",
			before.meta.ResourceVersion, after.meta.ResourceVersion, after.summary)
	}

	// Readable again: the report is replaced.
	runOnce(t, newAuditor(t, reportOptions(t), nil))
	if r := nsReports(t, ns)[policyreport.ReportName]; len(r.results) != 0 {
		t.Errorf("after a run that read the namespace, %d results, want none", len(r.results))
	}
}

// TestReportsSplitWriteFailed: when a namespace's report fails to write,
// its reports beyond the ones needed are kept: their results may be the
// ones the failed write was to hold.
func TestReportsSplitWriteFailed(t *testing.T) {
	const ns = "rep-split-failed"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "bad", 5, nil)
	apply(t, requiredLabel("ReportsSplitFailed"))
	waitEnforced(t, apply(t, constraint("ReportsSplitFailed", "owner", ns, "deny"))[0])
	opts := reportOptions(t)
	opts.ReportsMaxResults = 2
	runOnce(t, newAuditor(t, opts, nil))
	before := nsReports(t, ns)
	if len(before) != 3 {
		t.Fatalf("reports %v, want 3", keys(before))
	}

	var refused atomic.Int32
	first := policyreport.WGPolicy.GroupVersion.WithResource(policyreport.WGPolicy.Resource)
	path := "/apis/" + first.Group + "/" + first.Version + "/namespaces/" + ns + "/" + first.Resource + "/" + policyreport.ReportName
	cfg := faultConfig(func(req *http.Request) *http.Response {
		if req.Method == http.MethodPatch && req.URL.Path == path {
			refused.Add(1)
			return statusResponse(req, http.StatusInternalServerError, "InternalError")
		}
		return nil
	}, nil)
	a, err := audit.New(cfg, mgr.Engine(), opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bad-0000", "bad-0002", "bad-0004"} {
		label(t, ns, name, "owner", "x")
	}
	rep := runOnce(t, a)
	if refused.Load() == 0 || rep.Reports.Errors == 0 {
		t.Fatalf("write refused %d times, report errors %d: the test injects nothing", refused.Load(), rep.Reports.Errors)
	}
	after := nsReports(t, ns)
	for name, r := range before {
		if a, ok := after[name]; !ok || a.meta.ResourceVersion != r.meta.ResourceVersion {
			t.Errorf("%s changed or deleted after the first report failed to write; reports now %v", name, keys(after))
		}
	}
	if got := strings.Join(subjects(allResults(t, policyReports, ns), "ReportsSplitFailed/owner"), ","); !strings.Contains(got, ns+"/bad-0003") {
		t.Errorf("results %s lost bad-0003, which still violates", got)
	}
}

// TestReportsNameTaken: a report that the audit does not own (without its
// label), which has the name of one it would write, is left as it is; the
// refusal is counted.
func TestReportsNameTaken(t *testing.T) {
	const ns = "rep-name-taken"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	a := newAuditor(t, reportOptions(t), nil)
	runOnce(t, a) // installs the CRDs
	theirs := testenv.Parse(t, `apiVersion: wgpolicyk8s.io/v1alpha2
kind: PolicyReport
metadata:
  name: portcullis-audit
  namespace: rep-name-taken
  labels: {app.kubernetes.io/managed-by: someone-else}
results:
- {policy: their-policy, result: pass, source: someone-else}
summary: {pass: 1}
`)
	eventually(t, "their report to be created", func(ctx context.Context) (bool, error) {
		err := env.Client.Create(ctx, theirs.DeepCopy())
		return err == nil || apierrors.IsAlreadyExists(err), err
	})
	configMaps(t, ns, "bad", 1, nil)
	apply(t, requiredLabel("ReportsNameTaken"))
	waitEnforced(t, apply(t, constraint("ReportsNameTaken", "owner", ns, "deny"))[0])
	rep := runOnce(t, a)
	if rep.Reports.Errors == 0 {
		t.Errorf("report errors %d, want the name taken counted", rep.Reports.Errors)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(theirs.GroupVersionKind())
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(theirs), got); err != nil {
		t.Fatal(err)
	}
	results, _, _ := unstructured.NestedSlice(got.Object, "results")
	if l := got.GetLabels()[policyreport.LabelManagedBy]; l != "someone-else" || len(results) != 1 {
		t.Errorf("their report was taken over: label %s=%q, results %v", policyreport.LabelManagedBy, l, results)
	}
}
