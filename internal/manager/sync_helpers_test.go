package manager_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

var (
	configMapGVK     = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	networkPolicyGVK = schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicy"}
	ingressGVK       = schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}
	secretGVK        = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}
)

// syncConfig is a Config named name in namespace ns that syncs kinds and
// excludes the given namespaces from the sync.
func syncConfig(ns, name string, kinds []schema.GroupVersionKind, excluded ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: config.gatekeeper.sh/v1alpha1\nkind: Config\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n", name, ns)
	if len(kinds) > 0 {
		b.WriteString("  sync:\n    syncOnly:\n")
	}
	for _, k := range kinds {
		fmt.Fprintf(&b, "    - {group: %q, version: %q, kind: %q}\n", k.Group, k.Version, k.Kind)
	}
	if len(excluded) > 0 {
		fmt.Fprintf(&b, "  match:\n  - excludedNamespaces: [%s]\n    processes: [sync]\n", strings.Join(excluded, ", "))
	}
	return b.String()
}

// updateConfig replaces the spec of the Config that counts with the one of
// doc (a syncConfig).
func updateConfig(t *testing.T, doc string) {
	t.Helper()
	want := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &want.Object); err != nil {
		t.Fatal(err)
	}
	cur, err := getNamespaced(t.Context(), "config.gatekeeper.sh/v1alpha1", "Config", manager.DefaultNamespace, "config")
	if err != nil {
		t.Fatalf("getting the Config: %v", err)
	}
	cur.Object["spec"] = want.Object["spec"]
	if err := env.Client.Update(t.Context(), cur); err != nil {
		t.Fatalf("updating the Config: %v", err)
	}
}

func getNamespaced(ctx context.Context, apiVersion, kind, ns, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)
	return u, err
}

// inventoryTemplate is a template whose one violation, on any object,
// reports what data.inventory holds of a kind in a namespace: how many
// objects, and how many of them kept managedFields or the last-applied
// annotation. tag starts the message, to tell templates apart.
func inventoryTemplate(kind, tag, ns string, gvk schema.GroupVersionKind) string {
	rego := fmt.Sprintf(`package inventory%s

violation[{"msg": msg}] {
  objs := [o | o := data.inventory.namespace[%q][%q][%q][_]]
  managed := [o | o := objs[_]; o.metadata.managedFields]
  applied := [o | o := objs[_]; o.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]]
  msg := sprintf("%s count=%%d managedFields=%%d lastApplied=%%d", [count(objs), count(managed), count(applied)])
}
`, strings.ToLower(tag), ns, gvk.GroupVersion().String(), gvk.Kind, tag)
	return template(strings.ToLower(kind), kind, regoTarget(rego)) + "---\n" + plainConstraint(kind, "inventory")
}

// plainConstraint is a constraint of kind with no parameters, matching
// every object.
func plainConstraint(kind, name string) string {
	return fmt.Sprintf("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: %s\nmetadata:\n  name: %s\n", kind, name)
}

// inventoryCounts reviews a ConfigMap and parses the message of the
// inventoryTemplate tagged tag.
func inventoryCounts(ctx context.Context, eng *engine.Engine, tag string) (count, managed, applied int, err error) {
	msgs, err := review(ctx, eng, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n  namespace: default\n")
	if err != nil {
		return 0, 0, 0, err
	}
	for _, m := range msgs {
		if strings.HasPrefix(m, tag+" ") {
			_, err = fmt.Sscanf(m, tag+" count=%d managedFields=%d lastApplied=%d", &count, &managed, &applied)
			return count, managed, applied, err
		}
	}
	return 0, 0, 0, fmt.Errorf("no message tagged %s in %q", tag, msgs)
}

// waitInventory polls until the inventoryTemplate tagged tag reports count
// objects.
func waitInventory(t *testing.T, eng *engine.Engine, tag string, count int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s: %d objects in data.inventory", tag, count), func(ctx context.Context) (bool, error) {
		n, _, _, err := inventoryCounts(ctx, eng, tag)
		return err == nil && n == count, fmt.Errorf("count %d, err %v", n, err)
	})
}

// syncing reports whether the manager syncs gvk.
func syncing(m *running, gvk schema.GroupVersionKind) bool {
	return slices.Contains(m.Sync().Kinds(), gvk)
}

// metricValue is the value of a counter or gauge in controller-runtime's
// registry whose labels include the given ones; 0 if none.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	m, ok := testenv.FindMetric(t, name, labels)
	switch {
	case !ok:
		return 0
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}
