package manager_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/mutation"
)

func getMutator(ctx context.Context, kind, name string) (*unstructured.Unstructured, error) {
	version := "v1"
	if kind == mutation.KindAssignImage {
		version = "v1alpha1"
	}
	return get(ctx, "mutations.gatekeeper.sh/"+version, kind, name)
}

// mutatorState is podID's entry on the mutator's current generation and
// the Ready condition's status; an error until both are there.
func mutatorState(ctx context.Context, kind, name, podID string) (entry map[string]any, ready string, err error) {
	u, err := getMutator(ctx, kind, name)
	if err != nil {
		return nil, "", err
	}
	e := testenv.ByPod(u, podID)
	if e == nil {
		return nil, "", fmt.Errorf("no byPod entry for %s: %v", podID, u.Object["status"])
	}
	if gen, _ := e["observedGeneration"].(int64); gen != u.GetGeneration() {
		return nil, "", fmt.Errorf("byPod entry at generation %d, want %d", gen, u.GetGeneration())
	}
	c := condition(u, "Ready")
	if c == nil || c["observedGeneration"] != u.GetGeneration() {
		return nil, "", fmt.Errorf("no Ready condition at generation %d: %v", u.GetGeneration(), u.Object["status"])
	}
	if e["mutatorUID"] != string(u.GetUID()) {
		return nil, "", fmt.Errorf("mutatorUID %v, want %s", e["mutatorUID"], u.GetUID())
	}
	ready, _ = c["status"].(string)
	return e, ready, nil
}

func mutatorEnforced(ctx context.Context, kind, name, podID string) (bool, error) {
	e, ready, err := mutatorState(ctx, kind, name, podID)
	if err != nil {
		return false, err
	}
	if e["enforced"] != true || e["errors"] != nil || ready != "True" {
		return false, fmt.Errorf("entry %v, Ready %s", e, ready)
	}
	return true, nil
}

// mutatorError waits for podID's error on the mutator and returns it.
func mutatorError(t *testing.T, kind, name, podID string) map[string]any {
	t.Helper()
	var got map[string]any
	eventually(t, kind+" "+name+" to report an error", func(ctx context.Context) (bool, error) {
		e, ready, err := mutatorState(ctx, kind, name, podID)
		if err != nil {
			return false, err
		}
		errs, _ := e["errors"].([]any)
		if len(errs) == 0 || e["enforced"] != nil || ready != "False" {
			return false, fmt.Errorf("entry %v, Ready %s", e, ready)
		}
		got, _ = errs[0].(map[string]any)
		return true, nil
	})
	return got
}

const assignPullPolicy = `
apiVersion: mutations.gatekeeper.sh/v1beta1
kind: Assign
metadata:
  name: status-pull-policy
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: "spec.containers[name: *].imagePullPolicy"
  parameters:
    assign:
      value: Always
`

// TestMutatorStatus: the manager loads mutators of every kind into its
// System and writes Gatekeeper's byPod entries and the Ready condition;
// a mutator that does not compile, and two in conflict, say why; when the
// conflict goes, the other is enforced again.
func TestMutatorStatus(t *testing.T) {
	const pod = "pod-mutators"
	m := startManager(t, startOpts{podID: pod})
	apply(t, assignPullPolicy)
	apply(t, `
apiVersion: mutations.gatekeeper.sh/v1alpha1
kind: AssignImage
metadata:
  name: status-image
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: "spec.containers[name: *].image"
  parameters:
    assignDomain: my.registry.io
---
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: status-owner
spec:
  location: metadata.labels.owner
  parameters:
    assign:
      value: admin
---
apiVersion: mutations.gatekeeper.sh/v1alpha1
kind: ModifySet
metadata:
  name: status-args
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: "spec.containers[name: *].args"
  parameters:
    values:
      fromList: [--verbose]
`)
	for _, k := range []struct{ kind, name string }{
		{"Assign", "status-pull-policy"}, {"AssignImage", "status-image"}, {"AssignMetadata", "status-owner"}, {"ModifySet", "status-args"},
	} {
		eventually(t, k.kind+" "+k.name+" to be enforced", func(ctx context.Context) (bool, error) {
			return mutatorEnforced(ctx, k.kind, k.name, pod)
		})
	}
	e, _, err := mutatorState(t.Context(), "Assign", "status-pull-policy", pod)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(e["operations"]) != "[audit generate mutation-controller mutation-status mutation-webhook status webhook]" {
		t.Errorf("operations = %v", e["operations"])
	}
	// The operation default filled in by the CRD, read through every version.
	set, err := get(t.Context(), "mutations.gatekeeper.sh/v1beta1", "ModifySet", "status-args")
	if err != nil {
		t.Fatal(err)
	}
	if op, _, _ := unstructured.NestedString(set.Object, "spec", "parameters", "operation"); op != "merge" {
		t.Errorf("spec.parameters.operation = %q, want the default merge", op)
	}
	if got := len(m.Mutation().IDs()); got < 4 {
		t.Errorf("the System holds %d mutators, want 4 at least", got)
	}

	t.Run("bad location", func(t *testing.T) {
		apply(t, strings.NewReplacer("status-pull-policy", "status-bad", "spec.containers[name: *].imagePullPolicy", "spec.containers[name: *]").Replace(assignPullPolicy))
		e := mutatorError(t, "Assign", "status-bad", pod)
		if msg, _ := e["message"].(string); !strings.Contains(msg, "spec.location: ends with the glob [name: *]") || e["type"] != nil {
			t.Errorf("error = %v", e)
		}
		if m.Mutation().Get(mutation.ID{Kind: "Assign", Name: "status-bad"}) != nil {
			t.Error("a mutator that does not compile is in the System")
		}
		eventually(t, "the mutator gauges", func(context.Context) (bool, error) {
			got := gatherGatekeeper(t)
			active := gaugeValue(got["gatekeeper_mutators"], "status", "active")
			errs := gaugeValue(got["gatekeeper_mutators"], "status", "error")
			return active == 4 && errs == 1, fmt.Errorf("gatekeeper_mutators: %v", got["gatekeeper_mutators"].GetMetric())
		})
	})

	t.Run("conflict", func(t *testing.T) {
		apply(t, strings.NewReplacer("status-pull-policy", "status-conflict", "spec.containers[name: *].imagePullPolicy", "spec.containers.imagePullPolicy").Replace(assignPullPolicy))
		// spec.containers is an object for the new Assign, a list for the
		// others on Pods: all four are left out.
		want := "the following mutators have conflicting schemas: [Assign.mutations.gatekeeper.sh /status-conflict," +
			"Assign.mutations.gatekeeper.sh /status-pull-policy,AssignImage.mutations.gatekeeper.sh /status-image,ModifySet.mutations.gatekeeper.sh /status-args]"
		for _, name := range []string{"status-conflict", "status-pull-policy"} {
			eventually(t, name+" to report the conflict", func(ctx context.Context) (bool, error) {
				e, ready, err := mutatorState(ctx, "Assign", name, pod)
				if err != nil {
					return false, err
				}
				errs, _ := e["errors"].([]any)
				if len(errs) != 1 || ready != "False" {
					return false, fmt.Errorf("entry %v", e)
				}
				got, _ := errs[0].(map[string]any)
				return got["type"] == mutation.ConflictType && got["message"] == want, fmt.Errorf("error = %v, want type %s, message %q", got, mutation.ConflictType, want)
			})
		}
		eventually(t, "gatekeeper_mutator_conflicting_count", func(context.Context) (bool, error) {
			got := gaugeValue(gatherGatekeeper(t)["gatekeeper_mutator_conflicting_count"])
			return got == 4, fmt.Errorf("gatekeeper_mutator_conflicting_count = %v, want 4", got)
		})
		u, err := getMutator(t.Context(), "Assign", "status-conflict")
		if err != nil {
			t.Fatal(err)
		}
		deleteAndWait(t, u)
		for _, k := range []struct{ kind, name string }{{"Assign", "status-pull-policy"}, {"AssignImage", "status-image"}, {"ModifySet", "status-args"}} {
			eventually(t, k.name+" to be enforced again", func(ctx context.Context) (bool, error) {
				return mutatorEnforced(ctx, k.kind, k.name, pod)
			})
		}
	})
}

// TestMutatorNameLength: the v1 CRD refuses names of more than 63
// characters, as Gatekeeper's does.
func TestMutatorNameLength(t *testing.T) {
	long := strings.Repeat("a", 64)
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("mutations.gatekeeper.sh/v1")
	u.SetKind("AssignMetadata")
	u.SetName(long)
	_ = unstructured.SetNestedField(u.Object, "metadata.labels.a", "spec", "location")
	err := env.Client.Create(t.Context(), u)
	if err == nil || !strings.Contains(err.Error(), "metadata.name") {
		t.Errorf("Create with a 64-character name = %v, want an error on metadata.name", err)
	}
}

// TestMutatorStatusOfGoneReplicasRemoved: with --operation=mutation-status
// the entries of replicas gone are removed from mutators too.
func TestMutatorStatusOfGoneReplicasRemoved(t *testing.T) {
	testenv.EnsureNamespaces(t, env.Client, manager.DefaultNamespace)
	const pod = "pod-mutation-status"
	startManager(t, startOpts{podID: pod, options: func(o *manager.Options) {
		o.HeartbeatDuration = 2 * time.Second
		o.Operations = []manager.Operation{manager.OperationMutationController, manager.OperationMutationStatus}
	}})
	apply(t, strings.Replace(assignPullPolicy, "status-pull-policy", "pruned-pull-policy", 1))
	eventually(t, "the Assign to be enforced", func(ctx context.Context) (bool, error) {
		return mutatorEnforced(ctx, "Assign", "pruned-pull-policy", pod)
	})
	u, err := getMutator(t.Context(), "Assign", "pruned-pull-policy")
	if err != nil {
		t.Fatal(err)
	}
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "byPod")
	list = append(list, map[string]any{"id": "mutation-gone", "enforced": true, "observedGeneration": u.GetGeneration()})
	if err := unstructured.SetNestedSlice(u.Object, list, "status", "byPod"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Status().Update(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the entry of the replica gone to be removed", func(ctx context.Context) (bool, error) {
		u, err := getMutator(ctx, "Assign", "pruned-pull-policy")
		if err != nil {
			return false, err
		}
		return byPodIDs(u) == pod, fmt.Errorf("byPod ids %s", byPodIDs(u))
	})
}
