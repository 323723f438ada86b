package manager_test

import (
	"context"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/controllers/datasync"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

func configMap(ns, name string, annotations string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\n  annotations: {%s}\ndata:\n  key: value\n",
		name, ns, annotations)
}

// TestSyncConfigChanges changes the Config under a running manager: the
// namespace exclusions, then the kinds. A kind removed from the Config
// disappears from data.inventory; objects are stored without managedFields
// and the last-applied annotation.
func TestSyncConfigChanges(t *testing.T) {
	const ns, excludedNS = "sync-cm", "sync-excl-a"
	testenv.EnsureNamespaces(t, env.Client, manager.DefaultNamespace, ns, excludedNS)
	lastApplied := `kubectl.kubernetes.io/last-applied-configuration: '{"big":"copy"}', team: a`
	apply(t, configMap(ns, "one", lastApplied)+"---\n"+configMap(ns, "two", "")+"---\n"+configMap(ns, "three", ""))
	apply(t, configMap(excludedNS, "one", "")+"---\n"+configMap(excludedNS, "two", ""))
	kinds := []schema.GroupVersionKind{configMapGVK, networkPolicyGVK}
	apply(t, syncConfig(manager.DefaultNamespace, "config", kinds, `"sync-excl-*"`))

	m := startManager(t, startOpts{})
	waitReady(t, m)
	apply(t, inventoryTemplate("SyncCountConfigMaps", "cm", ns, configMapGVK))
	apply(t, inventoryTemplate("SyncCountExcluded", "excl", excludedNS, configMapGVK))
	eventually(t, "the inventory templates to be enforced", func(ctx context.Context) (bool, error) {
		a, err := constraintEnforced(ctx, "SyncCountConfigMaps", "inventory", m.podID)
		if !a {
			return false, err
		}
		return constraintEnforced(ctx, "SyncCountExcluded", "inventory", m.podID)
	})

	t.Run("stored without managedFields and last-applied", func(t *testing.T) {
		n, managed, applied, err := inventoryCounts(t.Context(), m.Engine(), "cm")
		if err != nil || n != 3 || managed != 0 || applied != 0 {
			t.Fatalf("inventory: count=%d managedFields=%d lastApplied=%d (err %v), want 3, 0, 0", n, managed, applied, err)
		}
		live, err := getNamespaced(t.Context(), "v1", "ConfigMap", ns, "one")
		if err != nil || len(live.GetManagedFields()) == 0 {
			t.Fatalf("the live ConfigMap has no managedFields to strip (err %v): the test proves nothing", err)
		}
	})
	t.Run("excluded namespace not synced", func(t *testing.T) {
		if n, _, _, err := inventoryCounts(t.Context(), m.Engine(), "excl"); err != nil || n != 0 {
			t.Fatalf("%s: %d objects in the inventory (err %v), want 0", excludedNS, n, err)
		}
	})
	t.Run("exclusion lifted", func(t *testing.T) {
		updateConfig(t, syncConfig(manager.DefaultNamespace, "config", kinds))
		waitInventory(t, m.Engine(), "excl", 2)
		if n, _, _, err := inventoryCounts(t.Context(), m.Engine(), "cm"); err != nil || n != 3 {
			t.Fatalf("%s: %d objects in the inventory (err %v), want still 3", ns, n, err)
		}
	})
	t.Run("kind removed from the Config", func(t *testing.T) {
		updateConfig(t, syncConfig(manager.DefaultNamespace, "config", []schema.GroupVersionKind{networkPolicyGVK}))
		waitInventory(t, m.Engine(), "cm", 0)
		waitInventory(t, m.Engine(), "excl", 0)
		if syncing(m, configMapGVK) || !syncing(m, networkPolicyGVK) {
			t.Fatalf("synced kinds = %v, want NetworkPolicy only", m.Sync().Kinds())
		}
	})
}

// TestSyncBadInput: an unknown kind is reported and the others sync; a
// Config not named config, or in another namespace, is ignored; a removed
// Config stops syncing what only it listed, while a SyncSet's kinds go on.
func TestSyncBadInput(t *testing.T) {
	const ns = "sync-bad"
	testenv.EnsureNamespaces(t, env.Client, manager.DefaultNamespace, ns)
	apply(t, configMap(ns, "one", ""))
	widget := schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	incomplete := schema.GroupVersionKind{Kind: "Service"}
	config := apply(t, syncConfig(manager.DefaultNamespace, "config", []schema.GroupVersionKind{widget, configMapGVK, incomplete}))[0]
	apply(t, syncConfig(manager.DefaultNamespace, "not-config", []schema.GroupVersionKind{secretGVK}))
	apply(t, syncConfig("default", "config", []schema.GroupVersionKind{secretGVK}))
	apply(t, `apiVersion: syncset.gatekeeper.sh/v1alpha1
kind: SyncSet
metadata:
  name: sync-bad
spec:
  gvks:
  - {group: networking.k8s.io, version: v1, kind: Ingress}
`)
	t.Run("schema refuses bad wildcards and processes", func(t *testing.T) {
		good := syncConfig(manager.DefaultNamespace, "good-schema", nil) + "  match:\n  - {excludedNamespaces: [\"kube-*\", \"*-system\"], processes: [\"*\"]}\n"
		apply(t, good) // the same Config with good values is accepted
		for _, match := range []string{`{excludedNamespaces: ["kube_system!"], processes: [sync]}`, `{excludedNamespaces: [a], processes: [bogus]}`} {
			u := &unstructured.Unstructured{}
			doc := syncConfig(manager.DefaultNamespace, "bad-schema", nil) + "  match:\n  - " + match + "\n"
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatal(err)
			}
			if err := env.Client.Create(t.Context(), u); !apierrors.IsInvalid(err) {
				_ = env.Client.Delete(t.Context(), u)
				t.Errorf("creating a Config with match %s: err = %v, want Invalid", match, err)
			}
		}
	})
	invalid := map[string]string{"reason": datasync.ReasonInvalidKind}
	before := metricValue(t, "portcullis_sync_errors_total", invalid)

	m := startManager(t, startOpts{})
	// An unknown kind does not hold readiness back.
	waitReady(t, m)
	apply(t, inventoryTemplate("SyncCountBadInput", "bad", ns, configMapGVK))
	eventually(t, "the inventory template to be enforced", func(ctx context.Context) (bool, error) {
		return constraintEnforced(ctx, "SyncCountBadInput", "inventory", m.podID)
	})

	t.Run("unknown kind reported, others synced", func(t *testing.T) {
		waitInventory(t, m.Engine(), "bad", 1)
		if !syncing(m, ingressGVK) {
			t.Errorf("synced kinds = %v, want the SyncSet's Ingress", m.Sync().Kinds())
		}
		if got := metricValue(t, "portcullis_sync_errors_total", invalid) - before; got < 2 {
			t.Errorf("portcullis_sync_errors_total{reason=invalid_kind} grew by %v, want at least 2 (Widget, and Service without version)", got)
		}
		if got := metricValue(t, "portcullis_sync_invalid_kinds", nil); got != 2 {
			t.Errorf("portcullis_sync_invalid_kinds = %v, want 2", got)
		}
	})
	t.Run("other Configs ignored", func(t *testing.T) {
		if syncing(m, secretGVK) {
			t.Fatalf("synced kinds = %v: Secrets come from a Config that is not the one", m.Sync().Kinds())
		}
	})
	t.Run("removed Config", func(t *testing.T) {
		deleteAndWait(t, config)
		waitInventory(t, m.Engine(), "bad", 0)
		if syncing(m, configMapGVK) || !syncing(m, ingressGVK) {
			t.Fatalf("synced kinds = %v, want the SyncSet's Ingress only", m.Sync().Kinds())
		}
		eventually(t, "no kind in error", func(context.Context) (bool, error) {
			v := metricValue(t, "portcullis_sync_invalid_kinds", nil)
			return v == 0, fmt.Errorf("portcullis_sync_invalid_kinds = %v", v)
		})
	})
}
