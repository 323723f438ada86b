package policyreport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
	"github.com/portcullis-dev/portcullis/config"
)

// API is a report API: its group version, its namespaced and cluster
// kinds.
type API struct {
	GroupVersion schema.GroupVersion
	// Resource and Kind are the namespaced report's, ClusterResource and
	// ClusterKind the cluster report's.
	Resource, Kind               string
	ClusterResource, ClusterKind string
	// openReports marks openreports.io, whose reports carry a top-level
	// source.
	openReports bool
}

var (
	// WGPolicy is wgpolicyk8s.io/v1alpha2: PolicyReport and
	// ClusterPolicyReport, whose CRDs the writer installs when missing.
	WGPolicy = API{
		GroupVersion: v1alpha2.GroupVersion,
		Resource:     "policyreports", Kind: "PolicyReport",
		ClusterResource: "clusterpolicyreports", ClusterKind: "ClusterPolicyReport",
	}
	// OpenReports is openreports.io/v1alpha1: Report and ClusterReport,
	// written instead of WGPolicy where their CRDs are served.
	OpenReports = API{
		GroupVersion: orv1alpha1.SchemeGroupVersion,
		Resource:     "reports", Kind: "Report",
		ClusterResource: "clusterreports", ClusterKind: "ClusterReport",
		openReports: true,
	}
)

func (a API) String() string { return a.GroupVersion.String() }

// kind is the report kind of namespace ns ("" for cluster reports).
func (a API) kind(ns string) string {
	if ns == "" {
		return a.ClusterKind
	}
	return a.Kind
}

// path is the URL path of a report, or of the collection with name "".
func (a API) path(ns, name string) []string {
	p := []string{"/apis", a.GroupVersion.Group, a.GroupVersion.Version}
	if ns == "" {
		p = append(p, a.ClusterResource)
	} else {
		p = append(p, "namespaces", ns, a.Resource)
	}
	if name != "" {
		p = append(p, name)
	}
	return p
}

// served reports whether the API server serves both kinds of a.
func (w *Writer) served(a API) (bool, error) {
	list, err := w.disc.ServerResourcesForGroupVersion(a.GroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discovering %s: %w", a, err)
	}
	var found int
	for _, r := range list.APIResources {
		if r.Name == a.Resource || r.Name == a.ClusterResource {
			found++
		}
	}
	return found == 2, nil
}

// chooseAPI picks the API to write: openreports.io where served, else
// wgpolicyk8s.io, whose CRDs are installed if missing (in the time
// returned).
func (w *Writer) chooseAPI(ctx context.Context) (API, time.Duration, error) {
	for _, a := range []API{OpenReports, WGPolicy} {
		ok, err := w.served(a)
		if err != nil {
			return API{}, 0, err
		}
		if ok {
			return a, 0, nil
		}
	}
	begin := time.Now()
	if err := w.installCRDs(ctx); err != nil {
		return API{}, time.Since(begin), err
	}
	return WGPolicy, time.Since(begin), nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crdTimeout bounds the wait for installed CRDs to be served.
const crdTimeout = time.Minute

// installCRDs creates the wgpolicyk8s.io CRDs that do not exist (an
// existing one, Kyverno's for instance, is left as it is), then waits
// until wgpolicyk8s.io/v1alpha2 is served.
func (w *Writer) installCRDs(ctx context.Context) error {
	for _, manifest := range [][]byte{config.PolicyReportCRD, config.ClusterPolicyReportCRD} {
		u := &unstructured.Unstructured{}
		if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096).Decode(&u.Object); err != nil {
			return fmt.Errorf("reading the embedded report CRDs: %w", err)
		}
		_, err := w.dyn.Resource(crdGVR).Create(ctx, u, metav1.CreateOptions{FieldManager: w.opts.FieldManager})
		switch {
		case apierrors.IsAlreadyExists(err):
			if err := w.checkCRD(ctx, u.GetName()); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("installing CRD %s: %w", u.GetName(), err)
		default:
			w.log.Info("Installed the report CRD", "crd", u.GetName())
		}
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, crdTimeout, true, func(context.Context) (bool, error) {
		return w.served(WGPolicy)
	})
	if err != nil {
		return fmt.Errorf("waiting for %s to be served: %w", WGPolicy, err)
	}
	return nil
}

// errNotServed reports an existing CRD that does not serve v1alpha2.
var errNotServed = errors.New("the CRD does not serve " + v1alpha2.GroupVersion.Version)

// checkCRD checks that an existing CRD serves v1alpha2.
func (w *Writer) checkCRD(ctx context.Context, name string) error {
	u, err := w.dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading CRD %s: %w", name, err)
	}
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	var served []string
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if on, _ := m["served"].(bool); on {
			name, _ := m["name"].(string)
			served = append(served, name)
		}
	}
	if !slices.Contains(served, v1alpha2.GroupVersion.Version) {
		return fmt.Errorf("CRD %s (served versions %v): %w", name, served, errNotServed)
	}
	return nil
}

// encode renders a report for server-side apply.
func (a API) encode(ns, name string, labels, annotations map[string]string, summary v1alpha2.PolicyReportSummary,
	results []v1alpha2.PolicyReportResult) ([]byte, error) {
	meta := metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations}
	tm := metav1.TypeMeta{APIVersion: a.GroupVersion.String(), Kind: a.kind(ns)}
	if !a.openReports {
		if ns == "" {
			return json.Marshal(&v1alpha2.ClusterPolicyReport{TypeMeta: tm, ObjectMeta: meta, Summary: summary, Results: results})
		}
		return json.Marshal(&v1alpha2.PolicyReport{TypeMeta: tm, ObjectMeta: meta, Summary: summary, Results: results})
	}
	sum := orv1alpha1.ReportSummary{Pass: summary.Pass, Fail: summary.Fail, Warn: summary.Warn, Error: summary.Error, Skip: summary.Skip}
	var out []orv1alpha1.ReportResult
	if len(results) > 0 {
		out = make([]orv1alpha1.ReportResult, len(results))
	}
	for i := range results {
		r := &results[i]
		out[i] = orv1alpha1.ReportResult{
			Source: r.Source, Policy: r.Policy, Rule: r.Rule, Category: r.Category,
			Severity: orv1alpha1.ResultSeverity(r.Severity), Timestamp: r.Timestamp, Result: orv1alpha1.Result(r.Result),
			Scored: r.Scored, Subjects: r.Subjects, ResourceSelector: r.SubjectSelector, Description: r.Description,
			Properties: r.Properties,
		}
	}
	if ns == "" {
		return json.Marshal(&orv1alpha1.ClusterReport{TypeMeta: tm, ObjectMeta: meta, Source: Source, Summary: sum, Results: out})
	}
	return json.Marshal(&orv1alpha1.Report{TypeMeta: tm, ObjectMeta: meta, Source: Source, Summary: sum, Results: out})
}
