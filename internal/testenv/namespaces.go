package testenv

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// EnsureNamespace creates the Namespace name with labels unless it exists
// already (its labels are then left as they are). It is not deleted:
// envtest has no namespace controller, which deletion waits for.
func EnsureNamespace(t testing.TB, c client.Client, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Create(t.Context(), ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatalf("creating Namespace %s: %v", name, err)
	}
}

// EnsureNamespaces creates the Namespaces, without labels, that do not
// exist yet (EnsureNamespace).
func EnsureNamespaces(t testing.TB, c client.Client, names ...string) {
	t.Helper()
	for _, n := range names {
		EnsureNamespace(t, c, n, nil)
	}
}
