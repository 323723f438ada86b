package mutation_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/mutation"
)

// obj parses one YAML object.
func obj(t testing.TB, doc string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatalf("parsing %s: %v", doc, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatalf("parsing %s: %v", doc, err)
	}
	return u
}

// newMutator builds a mutator from YAML, failing the test on an error.
func newMutator(t testing.TB, doc string) *mutation.Mutator {
	t.Helper()
	m, err := mutation.New(obj(t, doc))
	if err != nil {
		t.Fatalf("New: %v\n%s", err, doc)
	}
	return m
}

// system loads the mutators given as YAML into a new System.
func system(t testing.TB, opts mutation.Options, docs ...string) *mutation.System {
	t.Helper()
	s := mutation.NewSystem(opts)
	for _, d := range docs {
		if _, err := s.Upsert(newMutator(t, d)); err != nil {
			t.Fatalf("Upsert: %v", err)
		}
	}
	return s
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// mutate runs the System on a copy of in and returns it.
func mutate(t testing.TB, s *mutation.System, in *unstructured.Unstructured, ns *corev1.Namespace, op mutation.Operation) (*unstructured.Unstructured, bool) {
	t.Helper()
	out := in.DeepCopy()
	changed, err := s.Mutate(context.Background(), out, ns, "Original", op)
	if err != nil {
		t.Fatalf("Mutate: %v", err)
	}
	return out, changed
}

// field reads a nested field of u by a dotted path with [i] indexes.
func field(t testing.TB, u *unstructured.Unstructured, keys ...any) any {
	t.Helper()
	var cur any = u.Object
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			cur = l[k]
		}
	}
	return cur
}

const nginxPod = `
apiVersion: v1
kind: Pod
metadata:
  name: nginx-1
  namespace: bar
spec:
  containers:
  - name: nginx
    image: nginx
  - name: foo
    image: foo:1
`
