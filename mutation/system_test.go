package mutation_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"

	"github.com/portcullis-dev/portcullis/mutation"
)

func assignYAML(name, location, value string) string {
	return fmt.Sprintf(`
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: %s
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: %q
  parameters:
    assign:
      value: %s
`, name, location, value)
}

type iterations struct {
	converged []bool
	n         []int
}

func (r *iterations) RecordIterations(converged bool, n int) {
	r.converged = append(r.converged, converged)
	r.n = append(r.n, n)
}

// TestConvergence: a mutator whose match depends on another's change
// applies in a second iteration, and the count says so.
func TestConvergence(t *testing.T) {
	rec := &iterations{}
	// AssignMetadata (applied after Assign) adds the label the Assign
	// selects on: the Assign applies in the second iteration.
	s := system(t, mutation.Options{Metrics: rec}, `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: needs-label
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  match:
    labelSelector:
      matchLabels:
        team: a
  location: spec.priorityClassName
  parameters:
    assign:
      value: high
`, `
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: label
spec:
  location: metadata.labels.team
  parameters:
    assign:
      value: a
`)
	out, changed := mutate(t, s, obj(t, nginxPod), nil, mutation.Create)
	if !changed || field(t, out, "spec", "priorityClassName") != "high" || out.GetLabels()["team"] != "a" {
		t.Fatalf("out = %v", out.Object)
	}
	if !reflect.DeepEqual(rec.n, []int{3}) || !rec.converged[0] {
		t.Errorf("iterations = %v %v, want 3 (label, then Assign, then nothing)", rec.n, rec.converged)
	}
	if _, changed := mutate(t, s, out, nil, mutation.Create); changed {
		t.Error("the mutated object changed again")
	}
	if rec.n[1] != 0 {
		t.Errorf("an unchanged object counts %d iterations, want 0", rec.n[1])
	}
}

// TestOrder: mutators apply sorted by kind then name; the last Assign of
// a location wins, and AssignMetadata sees what Assign did.
func TestOrder(t *testing.T) {
	s := system(t, mutation.Options{},
		assignYAML("b", "spec.schedulerName", "b"),
		assignYAML("a", "spec.schedulerName", "a"),
	)
	if got := s.IDs(); !reflect.DeepEqual(got, []mutation.ID{{Kind: "Assign", Name: "a"}, {Kind: "Assign", Name: "b"}}) {
		t.Errorf("IDs = %v", got)
	}
	// a then b every pass: b's value stays, the first pass converges on
	// the second.
	out, _ := mutate(t, s, obj(t, nginxPod), nil, mutation.Create)
	if field(t, out, "spec", "schedulerName") != "b" {
		t.Errorf("schedulerName = %v, want b (applied last)", field(t, out, "spec", "schedulerName"))
	}
}

// TestAnnotationsAndLog: --mutation-annotations and --log-mutations.
func TestAnnotationsAndLog(t *testing.T) {
	var logs []string
	log := funcr.New(func(prefix, args string) { logs = append(logs, args) }, funcr.Options{})
	s := system(t, mutation.Options{Annotations: true, LogMutations: true, Log: log, NewID: func() string { return "uuid-1" }},
		assignYAML("pull", "spec.containers[name: *].imagePullPolicy", "Always"),
		`
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: k8sownerlabel
  generation: 1
spec:
  location: metadata.labels.owner
  parameters:
    assign:
      value: admin
`)
	out, _ := mutate(t, s, obj(t, nginxPod), nil, mutation.Create)
	want := map[string]string{"gatekeeper.sh/mutation-id": "uuid-1", "gatekeeper.sh/mutations": "Assign//pull:0, AssignMetadata//k8sownerlabel:1"}
	if !reflect.DeepEqual(out.GetAnnotations(), want) {
		t.Errorf("annotations = %v, want %v", out.GetAnnotations(), want)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], `"msg"="Mutation applied"`) ||
		!strings.Contains(logs[0], `"iteration_0"="Assign//pull:0, AssignMetadata//k8sownerlabel:1"`) ||
		!strings.Contains(logs[0], `"resource_name"="nginx-1"`) || !strings.Contains(logs[0], `"Mutation Id"="uuid-1"`) || !strings.Contains(logs[0], `"semantic"=true`) {
		t.Errorf("logs = %q", logs)
	}
}

// TestFromMetadata: the namespace and name of the object.
func TestFromMetadata(t *testing.T) {
	s := system(t, mutation.Options{}, `
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: ns-label
spec:
  location: metadata.labels.namespace
  parameters:
    assign:
      fromMetadata:
        field: namespace
`, `
apiVersion: mutations.gatekeeper.sh/v1beta1
kind: Assign
metadata:
  name: hostname
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: spec.hostname
  parameters:
    assign:
      fromMetadata:
        field: name
`)
	out, _ := mutate(t, s, obj(t, nginxPod), nil, mutation.Create)
	if out.GetLabels()["namespace"] != "bar" || field(t, out, "spec", "hostname") != "nginx-1" {
		t.Errorf("labels %v, hostname %v", out.GetLabels(), field(t, out, "spec", "hostname"))
	}
}

// TestModifySetMerge: missing values are appended once, in order; a
// value that is not a list fails the mutation.
func TestModifySetMerge(t *testing.T) {
	s := system(t, mutation.Options{}, `
apiVersion: mutations.gatekeeper.sh/v1
kind: ModifySet
metadata:
  name: caps
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: "spec.containers[name:*].securityContext.capabilities.drop"
  parameters:
    values:
      fromList: [ALL, NET_RAW, ALL]
`)
	p := obj(t, nginxPod)
	field(t, p, "spec", "containers", 0).(map[string]any)["securityContext"] = map[string]any{"capabilities": map[string]any{"drop": []any{"NET_RAW", "X"}}}
	out, _ := mutate(t, s, p, nil, mutation.Create)
	if got := field(t, out, "spec", "containers", 0, "securityContext", "capabilities", "drop"); !reflect.DeepEqual(got, []any{"NET_RAW", "X", "ALL"}) {
		t.Errorf("drop = %v", got)
	}
	// A list that does not exist gets the values as given, as Gatekeeper's
	// merge writes them.
	if got := field(t, out, "spec", "containers", 1, "securityContext", "capabilities", "drop"); !reflect.DeepEqual(got, []any{"ALL", "NET_RAW", "ALL"}) {
		t.Errorf("drop of a container without = %v", got)
	}
	field(t, p, "spec", "containers", 0).(map[string]any)["securityContext"] = map[string]any{"capabilities": map[string]any{"drop": "ALL"}}
	before := p.DeepCopy()
	_, err := s.Mutate(context.Background(), p, nil, "Original", mutation.Create)
	if err == nil || !strings.Contains(err.Error(), "spec.containers[name: *].securityContext.capabilities.drop: the object has a string there, not a list of values") ||
		!strings.Contains(err.Error(), "for mutator ModifySet.mutations.gatekeeper.sh /caps failed for  Pod bar nginx-1") {
		t.Errorf("error = %v", err)
	}
	if !reflect.DeepEqual(p.Object, before.Object) {
		t.Error("the object was half mutated")
	}
}

// TestMismatch: a location that disagrees with the object is an error
// naming the path.
func TestMismatch(t *testing.T) {
	s := system(t, mutation.Options{}, assignYAML("x", "spec.containers.image", "x"))
	_, err := s.Mutate(context.Background(), obj(t, nginxPod), nil, "Original", mutation.Create)
	if err == nil || !strings.Contains(err.Error(), "spec.containers: the object has a list there, not an object as the location says") {
		t.Errorf("error = %v", err)
	}
}

// TestSource: source: Generated mutators apply to generated objects only.
func TestSource(t *testing.T) {
	s := system(t, mutation.Options{}, `
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: gen
spec:
  match:
    source: Generated
  location: metadata.labels.generated
  parameters:
    assign:
      value: "yes"
`)
	if _, changed := mutate(t, s, obj(t, nginxPod), nil, mutation.Create); changed {
		t.Error("an original object was mutated by a Generated mutator")
	}
	out := obj(t, nginxPod)
	changed, err := s.Mutate(context.Background(), out, nil, "Generated", mutation.None)
	if err != nil || !changed || out.GetLabels()["generated"] != "yes" {
		t.Errorf("generated: %t %v %v", changed, err, out.GetLabels())
	}
}

// TestNamespaceSelector: the Namespace given is read; without it a
// namespaced object cannot be matched.
func TestNamespaceSelector(t *testing.T) {
	s := system(t, mutation.Options{}, `
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: prod
spec:
  match:
    namespaceSelector:
      matchLabels:
        env: prod
  location: metadata.labels.prod
  parameters:
    assign:
      value: "true"
`)
	if out, _ := mutate(t, s, obj(t, nginxPod), namespace("bar", map[string]string{"env": "prod"}), mutation.Create); out.GetLabels()["prod"] != "true" {
		t.Error("not mutated in a prod namespace")
	}
	if _, changed := mutate(t, s, obj(t, nginxPod), namespace("bar", nil), mutation.Create); changed {
		t.Error("mutated outside prod")
	}
	if _, err := s.Mutate(context.Background(), obj(t, nginxPod), nil, "Original", mutation.Create); err == nil || !strings.Contains(err.Error(), "matching for mutator AssignMetadata.mutations.gatekeeper.sh /prod failed") {
		t.Errorf("without the Namespace: %v", err)
	}
}
