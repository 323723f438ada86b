package celdriver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/engine/celdriver"
	"github.com/portcullis-dev/portcullis/internal/gklibrary"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestSharedVariablesAcrossTemplates: the variables that read no params
// (containers, anyObject, ...) are evaluated once per review for all
// templates. Querying every library template with CEL and all their
// sample constraints at once gives, for each library sample object, the
// results that querying each template alone gives.
func TestSharedVariablesAcrossTemplates(t *testing.T) {
	ctx := context.Background()
	all := celdriver.New()
	constraints, objects := celLibrary(t, all)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"team": "a"}}}
	compared := 0
	for _, o := range objects {
		for _, r := range libraryReviews(t, o, ns) {
			together, err := all.Query(ctx, testTarget, constraints, r)
			if err != nil {
				t.Fatal(err)
			}
			var alone []string
			for _, c := range constraints {
				resp, err := all.Query(ctx, testTarget, []*unstructured.Unstructured{c}, r)
				if err != nil {
					t.Fatal(err)
				}
				alone = append(alone, resultLines(resp.Results)...)
			}
			got, want := strings.Join(resultLines(together.Results), "\n"), strings.Join(alone, "\n")
			if got != want {
				t.Errorf("%s %s, all templates at once:\n%s\neach alone:\n%s", o.GetName(), r.req.Operation, got, want)
			}
			compared += len(alone)
		}
	}
	if compared < 100 {
		t.Errorf("only %d results compared: is the library complete?", compared)
	}
}

// resultLines are results as "kind name: message".
// celLibrary adds every library template with CEL to each driver, and
// returns their sample constraints and objects.
func celLibrary(t *testing.T, drivers ...*celdriver.Driver) (constraints, objects []*unstructured.Unstructured) {
	t.Helper()
	lib, err := gklibrary.ReadAll(testenv.LibraryDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range lib {
		ct, err := engine.ParseTemplate(p.Template)
		if err != nil {
			t.Fatal(err)
		}
		if !engine.HasCode(ct, engine.EngineCEL) {
			continue
		}
		for _, d := range drivers {
			if err := d.AddTemplate(context.Background(), ct); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range p.Constraints {
			constraints = append(constraints, c.Object)
		}
		for _, o := range p.Objects {
			objects = append(objects, o.Object)
		}
	}
	return constraints, objects
}

func resultLines(results []*types.Result) []string {
	out := make([]string, len(results))
	for i, r := range results {
		out[i] = fmt.Sprintf("%s %s: %s", r.Constraint.GetKind(), r.Constraint.GetName(), r.Msg)
	}
	return out
}

// TestSharedVariables: a variable is shared when it reads neither params
// nor a variable that does, and names the variables it reads.
func TestSharedVariables(t *testing.T) {
	ct := template(t, `
variables:
- name: a
  expression: 'object.metadata.name'
- name: b
  expression: 'variables.params.x'
- name: c
  expression: 'variables.a + "-" + variables.anyObject.kind'
- name: d
  expression: 'variables.c + variables.b'
- name: e
  expression: '[variables.a].exists(variables, variables == "x")'
- name: f
  expression: '"params"'
validations:
- expression: 'true'
`, false)
	got, err := celdriver.SharedVariables(ct)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, celdriver.AnyObjectVariable, "a", "c")
}

// TestSharedVariablesDefinedDifferently: templates that define a variable
// of the same name differently do not share its value.
func TestSharedVariablesDefinedDifferently(t *testing.T) {
	ctx := context.Background()
	d := celdriver.New()
	var cs []*unstructured.Unstructured
	for i, expr := range []string{"object.metadata.name", "object.kind", "variables.anyObject.metadata.name + \"!\""} {
		ct := template(t, fmt.Sprintf(`
variables:
- name: v
  expression: '%s'
- name: w
  expression: 'variables.v'
validations:
- expression: 'false'
  messageExpression: 'string(variables.w)'
`, expr), false)
		kind := fmt.Sprintf("K8sShared%d", i)
		ct.Name, ct.Spec.CRD.Spec.Names.Kind = strings.ToLower(kind), kind
		if err := d.AddTemplate(ctx, ct); err != nil {
			t.Fatal(err)
		}
		c := constraint("c", nil)
		c.SetKind(kind)
		cs = append(cs, c)
	}
	resp, err := d.Query(ctx, testTarget, cs, admissionFor(t, "CREATE", pod("p", nil), nil))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, resultLines(resp.Results), "K8sShared0 c: p", "K8sShared1 c: Pod", "K8sShared2 c: p!")
}
