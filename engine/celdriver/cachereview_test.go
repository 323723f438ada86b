package celdriver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
)

// cacheAgrees asks a driver with the result cache and one without each
// review in turn, for one constraint of the template, and fails where
// their results differ.
func cacheAgrees(t *testing.T, source string, params obj, opts []celdriver.Option, reviews ...*request) {
	t.Helper()
	ct := template(t, source, false)
	cached := celdriver.New(append([]celdriver.Option{celdriver.CacheSize(100)}, opts...)...)
	uncached := celdriver.New(opts...)
	for _, d := range []*celdriver.Driver{cached, uncached} {
		if err := d.AddTemplate(context.Background(), ct); err != nil {
			t.Fatalf("AddTemplate: %v", err)
		}
	}
	c := constraint("c", params)
	for i, r := range reviews {
		var got [2]string
		for j, d := range []*celdriver.Driver{cached, uncached} {
			resp, err := d.Query(context.Background(), testTarget, []*unstructured.Unstructured{c}, r)
			if err != nil {
				t.Fatalf("review %d: Query: %v", i, err)
			}
			if resp != nil {
				got[j] = strings.Join(resultLines(resp.Results), "; ")
			}
		}
		if got[0] != got[1] {
			t.Errorf("review %d: cached %q, uncached %q", i, got[0], got[1])
		}
	}
}

func podNamed(t *testing.T, name string) *request {
	return admissionFor(t, admissionv1.Create, pod(name, nil), nil)
}

// A leading dot names a root absolutely: .object is object.
func TestCacheReviewLeadingDot(t *testing.T) {
	t.Run("object", func(t *testing.T) {
		cacheAgrees(t, `
validations:
- expression: '.object.metadata.name != "bad"'`, nil, nil, podNamed(t, "good"), podNamed(t, "bad"))
	})
	t.Run("variables", func(t *testing.T) {
		cacheAgrees(t, `
validations:
- expression: '.variables.anyObject.metadata.name != "bad"'`, nil, nil, podNamed(t, "good"), podNamed(t, "bad"))
	})
	t.Run("shadowed in a comprehension", func(t *testing.T) {
		cacheAgrees(t, `
validations:
- expression: '[1].all(object, .object.metadata.name != "bad")'`, nil, nil, podNamed(t, "good"), podNamed(t, "bad"))
	})
}

// A variable name with an escape sequence resolves to the variable it
// unescapes to, as in the apiserver's lazy map.
func TestCacheReviewEscapedVariableName(t *testing.T) {
	cacheAgrees(t, `
variables:
- name: a__b
  expression: 'object.metadata.name'
- name: a__underscores__b
  expression: 'object.kind'
validations:
- expression: 'variables.a__underscores__b != "bad"'`, nil, nil, podNamed(t, "good"), podNamed(t, "bad"))
}

// Comparing with null costs more for a non-empty value than for an empty
// one: with a budget between the two, only the empty one is judged.
func TestCacheReviewNullCompareCost(t *testing.T) {
	src := `
validations:
- expression: 'object.metadata.name != null'`
	for budget := range int64(20) {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			cacheAgrees(t, src, nil, []celdriver.Option{celdriver.CostBudget(budget)}, podNamed(t, ""), podNamed(t, "x"))
		})
	}
}
