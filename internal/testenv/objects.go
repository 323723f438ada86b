package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// constraintGroup is the API group of the constraint CRDs that the
// manager creates for templates.
const constraintGroup = "constraints.gatekeeper.sh"

// Parse reads one YAML object, failing the test if it cannot.
func Parse(t testing.TB, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("parsing %s: %v", doc, err)
	}
	return u
}

// ParseAll reads the objects of a YAML stream, its documents separated by
// "---" lines; empty documents are skipped.
func ParseAll(t testing.TB, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for doc := range strings.SplitSeq(docs, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		out = append(out, Parse(t, doc))
	}
	return out
}

// DeleteAndWait deletes u and, for a ConstraintTemplate, waits for timeout
// at the most until its constraint CRD is gone, so that tests leave no
// kinds behind. With deleteCRD it deletes the CRD itself, as the garbage
// collector that envtest lacks would once no manager runs.
func DeleteAndWait(t testing.TB, c client.Client, u *unstructured.Unstructured, timeout time.Duration, deleteCRD bool) {
	t.Helper()
	ctx := context.Background()
	if err := c.Delete(ctx, u); client.IgnoreNotFound(err) != nil && !meta.IsNoMatchError(err) {
		t.Errorf("deleting %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	if u.GetKind() != "ConstraintTemplate" {
		return
	}
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	crd.SetName(u.GetName() + "." + constraintGroup)
	if deleteCRD {
		if err := c.Delete(ctx, crd); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting CRD %s: %v", crd.GetName(), err)
		}
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Name: crd.GetName()}, crd)
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("constraint CRD of %s still there after the template was deleted", u.GetName())
	}
}

// Objects creates the objects of a package's tests on its control plane
// and deletes them when each test ends.
type Objects struct {
	Client client.Client
	// Timeout bounds each wait: for a constraint's kind to be served, and
	// for a deleted template's constraint CRD to go.
	Timeout time.Duration
	// DeleteCRDs, if not nil, reports whether to delete a deleted
	// template's CRD too (see DeleteAndWait): when no manager runs.
	DeleteCRDs func() bool
}

// Apply creates the objects of a YAML stream (see ParseAll and Create).
func (o *Objects) Apply(t testing.TB, docs string) []*unstructured.Unstructured {
	t.Helper()
	out := ParseAll(t, docs)
	for _, u := range out {
		o.Create(t, u)
	}
	return out
}

// Create creates u, waiting for its kind to be served if it is a
// constraint whose CRD is not there yet, and deletes it when the test
// ends (Delete).
func (o *Objects) Create(t testing.TB, u *unstructured.Unstructured) {
	t.Helper()
	Create(t, o.Client, u, o.Timeout)
	t.Cleanup(func() { o.Delete(t, u) })
}

// Delete deletes u and, for a template, waits until its constraint CRD is
// gone (DeleteAndWait).
func (o *Objects) Delete(t testing.TB, u *unstructured.Unstructured) {
	t.Helper()
	DeleteAndWait(t, o.Client, u, o.Timeout, o.DeleteCRDs != nil && o.DeleteCRDs())
}
