package manager_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/controllers/datasync"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// benchSyncEnv turns TestSyncBenchmark on and sets how many ConfigMaps it
// syncs (`make bench-sync`: 10000).
const benchSyncEnv = "PORTCULLIS_BENCH_SYNC"

const benchNamespaces = 10

// TestSyncBenchmark creates $PORTCULLIS_BENCH_SYNC ConfigMaps, as kubectl
// apply leaves them (managedFields and the last-applied annotation), then
// starts a manager whose Config syncs ConfigMaps and reports: the time to
// ready (every ConfigMap in data.inventory), the growth of the heap (after
// GC) and of the RSS, and the bytes each synced object costs, measured as
// the heap freed when the kind is removed from the Config. It does so with
// the default stripping and with --sync-keep-managed-fields.
func TestSyncBenchmark(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(benchSyncEnv))
	if n <= 0 {
		t.Skipf("Skipping: set %s to the number of ConfigMaps to sync (make bench-sync)", benchSyncEnv)
	}
	testenv.EnsureNamespaces(t, env.Client, manager.DefaultNamespace)
	begin := time.Now()
	createBenchConfigMaps(t, n)
	t.Logf("Created %d ConfigMaps in %d namespaces in %s", n, benchNamespaces, time.Since(begin).Round(time.Millisecond))
	logObjectSize(t)

	type result struct {
		name                       string
		ready                      time.Duration
		heapPerObj, inventoryBytes float64
		rssMiB                     float64
	}
	var results []result
	for _, keep := range []bool{false, true} {
		name := "stripped"
		if keep {
			name = "kept (--sync-keep-managed-fields)"
		}
		t.Run(name, func(t *testing.T) {
			cfg := apply(t, syncConfig(manager.DefaultNamespace, "config", []schema.GroupVersionKind{configMapGVK}))[0]
			h0, rss0 := heapAfterGC(), rssBytes()
			start := time.Now()
			m := startManager(t, startOpts{podID: "bench", options: func(o *manager.Options) { o.Sync.KeepManagedFields = keep }})
			err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 10*time.Minute, true, func(context.Context) (bool, error) {
				return m.Ready() == nil, nil
			})
			if err != nil {
				t.Fatalf("Not ready: %v", m.Ready())
			}
			ready := time.Since(start)
			objects, synced := m.Sync().Count(configMapGVK)
			if !synced || objects < n {
				t.Fatalf("When ready, %d ConfigMaps in the inventory (synced %v), want at least %d", objects, synced, n)
			}
			h1, rss1 := heapAfterGC(), rssBytes()

			deleteAndWait(t, cfg)
			eventually(t, "ConfigMaps to leave the inventory", func(context.Context) (bool, error) {
				return !syncing(m, configMapGVK), nil
			})
			h2 := heapAfterGC()
			r := result{
				name: name, ready: ready,
				heapPerObj:     float64(int64(h1)-int64(h0)) / float64(objects),
				inventoryBytes: float64(int64(h1)-int64(h2)) / float64(objects),
				rssMiB:         float64(int64(rss1)-int64(rss0)) / (1 << 20),
			}
			results = append(results, r)
			t.Logf("%s: %d objects, ready in %s, heap +%.0f B/object, inventory %.0f B/object, RSS +%.1f MiB",
				name, objects, ready.Round(time.Millisecond), r.heapPerObj, r.inventoryBytes, r.rssMiB)
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-36s %12s %16s %22s %12s\n", "sync of "+strconv.Itoa(n)+" ConfigMaps", "time to ready", "heap B/object", "inventory B/object", "RSS growth")
	for _, r := range results {
		fmt.Fprintf(&b, "%-36s %12s %16.0f %22.0f %9.1f MiB\n", r.name, r.ready.Round(time.Millisecond), r.heapPerObj, r.inventoryBytes, r.rssMiB)
	}
	t.Log(b.String())
}

// createBenchConfigMaps creates n ConfigMaps concurrently, with server-side
// apply (managedFields) and a last-applied annotation, as kubectl apply
// leaves them, and deletes them when the test ends.
func createBenchConfigMaps(t *testing.T, n int) {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	for i := range benchNamespaces {
		ns := fmt.Sprintf("sync-bench-%d", i)
		testenv.EnsureNamespaces(t, env.Client, ns)
		t.Cleanup(func() {
			_ = c.DeleteAllOf(context.Background(), &corev1.ConfigMap{}, client.InNamespace(ns))
		})
	}
	const workers = 64
	idx := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range idx {
				if err := c.Create(t.Context(), benchConfigMap(i), client.FieldOwner("kubectl-client-side-apply")); err != nil {
					errs <- fmt.Errorf("creating ConfigMap %d: %w", i, err)
					return
				}
			}
		})
	}
	go func() {
		defer close(idx)
		for i := range n {
			select {
			case idx <- i:
			case <-t.Context().Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// benchConfigMap is a small application ConfigMap, with the copy of itself
// that kubectl apply keeps in an annotation.
func benchConfigMap(i int) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("app-config-%05d", i),
			Namespace: fmt.Sprintf("sync-bench-%d", i%benchNamespaces),
			Labels:    map[string]string{"app.kubernetes.io/name": fmt.Sprintf("app-%d", i%100), "app.kubernetes.io/part-of": "bench"},
		},
		Data: map[string]string{
			"LOG_LEVEL":    "info",
			"FEATURE_FLAG": strconv.FormatBool(i%2 == 0),
			"config.yaml":  fmt.Sprintf("server:\n  port: %d\n  timeout: 30s\ndatabase:\n  host: db-%d.example.internal\n  pool: 10\n", 8000+i%1000, i%7),
		},
	}
	applied, _ := json.Marshal(cm)
	cm.Annotations = map[string]string{datasync.LastAppliedAnnotation: string(applied)}
	return cm
}

// logObjectSize logs the JSON size of one benchmark ConfigMap as served and
// as synced (stripped).
func logObjectSize(t *testing.T) {
	t.Helper()
	u, err := getNamespaced(t.Context(), "v1", "ConfigMap", "sync-bench-0", "app-config-00000")
	if err != nil {
		t.Fatal(err)
	}
	full, _ := json.Marshal(u.Object)
	datasync.StripObject(u)
	stripped, _ := json.Marshal(u.Object)
	t.Logf("One ConfigMap: %d bytes of JSON as served, %d without managedFields and last-applied", len(full), len(stripped))
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// rssBytes is the resident set size of the test process (Linux), 0 if
// unknown.
func rssBytes() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
