package regodriver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers"
	fwrego "github.com/open-policy-agent/frameworks/constraint/pkg/client/drivers/rego"
	"github.com/open-policy-agent/frameworks/constraint/pkg/client/reviews"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/open-policy-agent/opa/v1/storage"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// library is the gatekeeper-library's templates with all their sample
// constraints, and every sample object.
type library struct {
	templates   []*templates.ConstraintTemplate
	dirs        []string // each template's directory, relative to the library
	constraints []*unstructured.Unstructured
	// first is each template's first sample constraint, as the bench uses.
	first   []*unstructured.Unstructured
	objects []*unstructured.Unstructured
	files   []string // the file of each object
}

func loadLibrary(t testing.TB) *library {
	t.Helper()
	dir := testenv.LibraryDir(t)
	lib := &library{}
	for _, p := range testenv.Library(t) {
		ct, err := engine.ParseTemplate(p.Template)
		if err != nil {
			t.Fatalf("%s: %v", p.Files.Template, err)
		}
		lib.templates = append(lib.templates, ct)
		rel, _ := filepath.Rel(dir, p.Files.Dir)
		lib.dirs = append(lib.dirs, filepath.ToSlash(rel))
		for _, c := range p.Constraints {
			lib.constraints = append(lib.constraints, c.Object)
		}
		if p.Constraint != nil {
			lib.first = append(lib.first, p.Constraint)
		}
		for _, o := range p.Objects {
			lib.objects = append(lib.objects, o.Object)
			lib.files = append(lib.files, o.File)
		}
	}
	return lib
}

// parseYAML parses the documents of a YAML stream.
func parseYAML(t testing.TB, path, content string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for doc := range strings.SplitSeq(content, "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if string(j) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, u)
	}
	return out
}

// reviewOf is input.review for an object: an AdmissionReview's request,
// or a CREATE of the object.
func reviewOf(u *unstructured.Unstructured) map[string]any {
	if u.GetKind() == "AdmissionReview" {
		req, _, _ := unstructured.NestedMap(u.Object, "request")
		return req
	}
	gvk := u.GroupVersionKind()
	return map[string]any{
		"kind":      map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind},
		"name":      u.GetName(),
		"namespace": u.GetNamespace(),
		"operation": "CREATE",
		"object":    u.Object,
	}
}

func inventoryPathOf(u *unstructured.Unstructured) storage.Path {
	gv := u.GroupVersionKind().GroupVersion().String()
	if ns := u.GetNamespace(); ns != "" {
		return storage.Path{"namespace", ns, gv, u.GetKind(), u.GetName()}
	}
	return storage.Path{"cluster", gv, u.GetKind(), u.GetName()}
}

// canonical renders results in a comparable, order-independent form.
func canonical(t testing.TB, resp *drivers.QueryResponse) []string {
	t.Helper()
	if resp == nil {
		return nil
	}
	out := make([]string, 0, len(resp.Results))
	for _, r := range resp.Results {
		b, err := json.Marshal(map[string]any{
			"kind": r.Constraint.GetKind(), "name": r.Constraint.GetName(),
			"msg": r.Msg, "metadata": r.Metadata,
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

// TestMatchesFrameworksDriver reviews every gatekeeper-library sample
// object against all library constraints (no matching: every constraint
// is evaluated on every object) with this driver and with the frameworks
// driver, without and with all samples in data.inventory, and with and
// without a namespace object; the results must be identical.
func TestMatchesFrameworksDriver(t *testing.T) {
	lib := loadLibrary(t)
	ctx := context.Background()
	ours := newDriver(t)
	theirs, err := fwrego.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []drivers.Driver{ours, theirs} {
		for _, ct := range lib.templates {
			if err := d.AddTemplate(ctx, ct); err != nil {
				t.Fatalf("%T: AddTemplate %s: %v", d, ct.Name, err)
			}
		}
		for _, c := range lib.constraints {
			if err := d.AddConstraint(ctx, c); err != nil {
				t.Fatalf("%T: AddConstraint %s: %v", d, c.GetName(), err)
			}
		}
	}

	compare := func(t *testing.T, phase string) {
		results := 0
		for i, u := range lib.objects {
			r := reviewOf(u)
			var opts []reviews.ReviewOpt
			if ns, _, _ := unstructured.NestedString(r, "namespace"); ns != "" && i%2 == 0 {
				opts = append(opts, reviews.Namespace(map[string]any{
					"apiVersion": "v1", "kind": "Namespace",
					"metadata": map[string]any{"name": ns, "labels": map[string]any{"owner": "me", "n": fmt.Sprint(i)}},
				}))
			}
			gotResp, gotErr := ours.Query(ctx, engine.TargetName, lib.constraints, r, opts...)
			wantResp, wantErr := theirs.Query(ctx, engine.TargetName, lib.constraints, r, opts...)
			if (gotErr == nil) != (wantErr == nil) {
				t.Errorf("%s: %s: error %v, frameworks %v", phase, lib.files[i], gotErr, wantErr)
				continue
			}
			got, want := canonical(t, gotResp), canonical(t, wantResp)
			results += len(got)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s %s: results differ\n got %d: %s\nwant %d: %s", phase, lib.files[i], u.GetName(),
					len(got), strings.Join(got, "\n      "), len(want), strings.Join(want, "\n      "))
			}
		}
		t.Logf("%s: %d objects, %d results", phase, len(lib.objects), results)
		if results == 0 {
			t.Errorf("%s: no results at all", phase)
		}
	}
	t.Run("no inventory", func(t *testing.T) { compare(t, "no inventory") })
	for _, d := range []drivers.Driver{ours, theirs} {
		for _, u := range lib.objects {
			if u.GetKind() == "AdmissionReview" || u.GetName() == "" {
				continue
			}
			if err := d.AddData(ctx, engine.TargetName, inventoryPathOf(u), u.DeepCopy().Object); err != nil {
				t.Fatalf("%T: AddData: %v", d, err)
			}
		}
	}
	t.Run("inventory", func(t *testing.T) { compare(t, "inventory") })
}
