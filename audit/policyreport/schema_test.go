package policyreport

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/config"
)

// TestEncodeFitsSchema: every field of the reports the writer encodes, for
// each API and scope, is in the CRD's schema (the API server would prune
// nothing). The writes ask for fieldValidation=Ignore, so the API server
// would not warn about a field it drops: this test is what catches one.
func TestEncodeFitsSchema(t *testing.T) {
	entries := testEntries(t, 4, "")
	p := newPart(0, entries)
	results := p.results(testCollector, nil, metav1.Timestamp{Seconds: 1, Nanos: 2})
	var sawSeverity, sawCategory, sawProperties bool
	for _, r := range results {
		sawSeverity = sawSeverity || r.Severity != ""
		sawCategory = sawCategory || r.Category != ""
		sawProperties = sawProperties || len(r.Properties) > 0
	}
	if !sawSeverity || !sawCategory || !sawProperties {
		t.Fatalf("the results do not use every optional field: severity %v, category %v, properties %v", sawSeverity, sawCategory, sawProperties)
	}
	annotations := map[string]string{AnnotationHash: p.hash}
	for _, tc := range []struct {
		api API
		ns  string
		crd []byte
	}{
		{WGPolicy, "ns", config.PolicyReportCRD},
		{WGPolicy, "", config.ClusterPolicyReportCRD},
		{OpenReports, "ns", openReportsCRD(t, "openreports.io_reports.yaml")},
		{OpenReports, "", openReportsCRD(t, "openreports.io_clusterreports.yaml")},
	} {
		kind := tc.api.kind(tc.ns)
		s := crdSchema(t, tc.crd, tc.api.GroupVersion.Version)
		b, err := tc.api.encode(tc.ns, p.name, map[string]string{LabelManagedBy: ManagedBy}, annotations, p.summary, results)
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatal(err)
		}
		if pruned := pruning.PruneWithOptions(obj, s, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}); len(pruned) > 0 {
			t.Errorf("%s: fields the CRD's schema does not have: %v", kind, pruned)
		}
	}
	// The check itself: a field the schema lacks is found.
	s := crdSchema(t, config.PolicyReportCRD, WGPolicy.GroupVersion.Version)
	obj := map[string]any{"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport", "results": []any{map[string]any{"policy": "p", "bogus": 1}}}
	if pruned := pruning.PruneWithOptions(obj, s, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}); strings.Join(pruned, ",") != "results[0].bogus" {
		t.Errorf("an unknown field: pruned %v, want results[0].bogus", pruned)
	}
}

// crdSchema is the structural schema of version of a CRD's YAML.
func crdSchema(t *testing.T, raw []byte, version string) *structuralschema.Structural {
	t.Helper()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != version || v.Schema == nil {
			continue
		}
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			t.Fatal(err)
		}
		s, err := structuralschema.NewStructural(&internal)
		if err != nil {
			t.Fatalf("%s: %v", crd.Name, err)
		}
		return s
	}
	t.Fatalf("%s: no schema for version %s", crd.Name, version)
	return nil
}

// openReportsCRD reads an openreports.io CRD that the reports-api module,
// whose types the writer encodes, ships.
func openReportsCRD(t *testing.T, name string) []byte {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-m", "-f", "{{.Dir}}", "github.com/openreports/reports-api").Output()
	if err != nil {
		t.Fatalf("locating the reports-api module: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "config", "crd", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
