package manager_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/controllers"
	"github.com/portcullis-dev/portcullis/internal/manager"
)

// TestRestart stops a manager and starts another: the new one rebuilds
// the engine from the API server before it reports ready, and rewrites
// nothing that did not change.
func TestRestart(t *testing.T) {
	first := startManager(t, startOpts{podID: "pod-r"})
	apply(t, requiredLabels("v1", "K8sRestartA"))
	apply(t, requiredLabels("v1beta1", "K8sRestartB"))
	breaking := apply(t, template("k8srestartbreaks", "K8sRestartBreaks", regoTarget(okRego)))[0]
	apply(t, constraint("K8sRestartA", "a1", "deny", "team"))
	apply(t, constraint("K8sRestartA", "a2", "warn", "owner"))
	apply(t, constraint("K8sRestartB", "b1", "dryrun", "team"))
	apply(t, `apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRestartBreaks
metadata:
  name: c1
`)
	for _, c := range [][2]string{{"K8sRestartA", "a1"}, {"K8sRestartA", "a2"}, {"K8sRestartB", "b1"}, {"K8sRestartBreaks", "c1"}} {
		eventually(t, c[1]+" to be enforced", func(ctx context.Context) (bool, error) {
			return constraintEnforced(ctx, c[0], c[1], first.podID)
		})
	}
	eventually(t, "the first manager to be ready", func(context.Context) (bool, error) {
		return first.Ready() == nil, first.Ready()
	})
	first.stop()

	// While no manager runs, the third template breaks.
	u, err := getTemplate(t.Context(), "k8srestartbreaks")
	if err != nil {
		t.Fatal(err)
	}
	targets, _, _ := unstructured.NestedSlice(u.Object, "spec", "targets")
	targets[0].(map[string]any)["rego"] = brokenRego
	if err := unstructured.SetNestedSlice(u.Object, targets, "spec", "targets"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Update(t.Context(), u); err != nil {
		t.Fatalf("breaking %s: %v", breaking.GetName(), err)
	}

	unchanged := []client.Object{
		tmplObj("k8srestarta"), tmplObj("k8srestartb"),
		crdObj("k8srestarta"), crdObj("k8srestartb"), crdObj("k8srestartbreaks"),
		constraintObj("K8sRestartA", "a1"), constraintObj("K8sRestartA", "a2"), constraintObj("K8sRestartB", "b1"),
	}
	before := resourceVersions(t, unchanged...)

	second := startManager(t, startOpts{podID: "pod-r", probes: true})
	eventually(t, "/readyz to answer 200", func(ctx context.Context) (bool, error) {
		return probe(ctx, second.healthz+"/readyz")
	})
	// Ready means loaded: the engine must hold everything now.
	if tmpls, cons := second.Engine().Counts(); tmpls != 2 || cons != 3 {
		t.Errorf("when ready, the engine holds %d templates and %d constraints, want 2 and 3", tmpls, cons)
	}
	if ok, err := probe(t.Context(), second.healthz+"/healthz"); !ok {
		t.Errorf("/healthz: %v", err)
	}
	if body, err := httpGet(t.Context(), second.metrics+"/metrics"); err != nil || !strings.Contains(body, `controller_runtime_reconcile_total{controller="constrainttemplate"`) {
		t.Errorf("/metrics: err %v, no controller_runtime_reconcile_total for constrainttemplate", err)
	}
	msgs, err := review(t.Context(), second.Engine(), pod)
	if err != nil || len(msgs) != 2 {
		t.Errorf("after the restart, violations = %q (err %v), want a1's and b1's", msgs, err)
	}

	t.Run("broken template and its constraint", func(t *testing.T) {
		eventually(t, "an ingest_error on the broken template", func(ctx context.Context) (bool, error) {
			e, err := templateError(ctx, "k8srestartbreaks", second.podID)
			return err == nil && e["code"] == "ingest_error", err
		})
		var e map[string]any
		eventually(t, "c1 to report its template is not loaded", func(ctx context.Context) (bool, error) {
			var err error
			e, err = constraintEntry(ctx, "K8sRestartBreaks", "c1", second.podID)
			return err == nil && e["enforced"] == false, err
		})
		errs, _ := e["errors"].([]any)
		if len(errs) == 0 || errs[0].(map[string]any)["code"] != "template_not_loaded" {
			t.Errorf("c1 byPod entry = %v, want a template_not_loaded error", e)
		}
	})

	t.Run("nothing rewritten", func(t *testing.T) {
		// A template applied now is a barrier: once it is loaded, the
		// manager has handled every event that came before it.
		apply(t, requiredLabels("v1", "K8sRestartBarrier"))
		eventually(t, "the barrier template to be Ready", func(ctx context.Context) (bool, error) {
			return templateLoaded(ctx, "k8srestartbarrier", second.podID)
		})
		after := resourceVersions(t, unchanged...)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s was rewritten across the restart: resourceVersion %s -> %s", k, v, after[k])
			}
		}
	})
}

// TestReplicas runs two managers with leader election, as two replicas:
// both load every template and constraint, whichever leads, and each
// reports under its own byPod id without overwriting the other.
func TestReplicas(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manager.DefaultNamespace}}
	if err := env.Client.Create(t.Context(), ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	a := startManager(t, startOpts{podID: "replica-a", leaderElect: true})
	b := startManager(t, startOpts{podID: "replica-b", leaderElect: true})
	// New kinds each run (-count=N): the client's RESTMapper may still
	// map the previous run's kinds.
	run := replicatedRuns.Add(1)
	kind, broken := fmt.Sprintf("K8sReplicated%d", run), fmt.Sprintf("K8sReplicatedBroken%d", run)
	apply(t, requiredLabels("v1", kind))
	apply(t, template(strings.ToLower(broken), broken, regoTarget(brokenRego)))
	apply(t, constraint(kind, "both", "deny", "team"))
	for _, r := range []*running{a, b} {
		eventually(t, r.podID+" to load the template", func(ctx context.Context) (bool, error) {
			return templateLoaded(ctx, strings.ToLower(kind), r.podID)
		})
		eventually(t, r.podID+" to enforce the constraint", func(ctx context.Context) (bool, error) {
			return constraintEnforced(ctx, kind, "both", r.podID)
		})
		eventually(t, r.podID+" to report the broken template", func(ctx context.Context) (bool, error) {
			e, err := templateError(ctx, strings.ToLower(broken), r.podID)
			return err == nil && e["code"] == "ingest_error", err
		})
	}
	for _, name := range []string{strings.ToLower(kind), strings.ToLower(broken)} {
		u, err := getTemplate(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if ids := byPodIDs(u); ids != "replica-a,replica-b" {
			t.Errorf("%s byPod ids = %s, want replica-a,replica-b", name, ids)
		}
	}
	lease := &coordinationv1.Lease{}
	eventually(t, "a leader", func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: manager.DefaultNamespace, Name: manager.LeaderElectionID}, lease)
		return err == nil && lease.Spec.HolderIdentity != nil, err
	})
}

var replicatedRuns atomic.Int32

func byPodIDs(u *unstructured.Unstructured) string {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
	var ids []string
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			ids = append(ids, fmt.Sprint(m["id"]))
		}
	}
	return strings.Join(sorted(ids), ",")
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(body), err
}

func probe(ctx context.Context, url string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK, fmt.Errorf("%s: %s", url, resp.Status)
}

func tmplObj(name string) client.Object {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("templates.gatekeeper.sh/v1")
	u.SetKind("ConstraintTemplate")
	u.SetName(name)
	return u
}

func crdObj(template string) client.Object {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	crd.SetName(template + "." + controllers.ConstraintGroup)
	return crd
}

func constraintObj(kind, name string) client.Object {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(controllers.ConstraintGVK(kind))
	u.SetName(name)
	return u
}
