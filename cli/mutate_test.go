package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// mutateOut runs portcullis mutate and parses the objects it prints.
func mutateOut(t *testing.T, stdin string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	code, out, errOut := run(t, stdin, append([]string{"mutate"}, args...)...)
	if code != 0 {
		t.Fatalf("portcullis mutate %v: exit %d\n%s", args, code, errOut)
	}
	docs, err := manifest.Parse("<stdout>", []byte(out))
	if err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, out)
	}
	objs := make([]*unstructured.Unstructured, len(docs))
	for i, d := range docs {
		objs[i] = d.Object
	}
	return objs
}

func nested(u *unstructured.Unstructured, path string) any {
	var cur any = u.Object
	for k := range strings.SplitSeq(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[k]
		case []any:
			if len(c) == 0 {
				return nil
			}
			cur = c[0].(map[string]any)[k] // first element: the sample Pods have one container
		default:
			return nil
		}
	}
	return cur
}

// TestMutateLibrary applies every mutation sample of the gatekeeper-library
// to its example with portcullis mutate, and checks the fields its
// documentation says it sets (or, for example-nomutation, leaves).
func TestMutateLibrary(t *testing.T) {
	root := testenv.MutationLibraryDir(t)
	psp := filepath.Join(root, "pod-security-policy")
	example := func(dir, sample string) string { return filepath.Join(psp, dir, "samples", sample, "example.yaml") }
	users := example("users", "users")
	for _, tc := range []struct {
		mutators string
		example  string
		want     map[string]any // dotted path in the first container, or spec.securityContext.*
	}{
		{"allow-privilege-escalation/samples/mutation.yaml", example("allow-privilege-escalation", "default-allow-privilege-escalation"),
			map[string]any{"spec.containers.securityContext.allowPrivilegeEscalation": false}},
		{"capabilities/samples/mutation-assign.yaml", example("capabilities", "default-add-capabilities"),
			map[string]any{"spec.containers.securityContext.capabilities.add": []any{"NEW_CAPABILITY"}}},
		{"capabilities/samples/mutation-modifyset.yaml", example("capabilities", "default-add-capabilities"),
			map[string]any{"spec.containers.securityContext.capabilities.add": []any{"NEW_CAPABILITY"}}},
		{"read-only-root-filesystem/samples/mutation.yaml", example("read-only-root-filesystem", "read-only-root-filesystem"),
			map[string]any{"spec.containers.securityContext.readOnlyRootFilesystem": true}},
		{"seccomp/samples/mutation.yaml", example("seccomp", "default-seccomp"),
			map[string]any{"spec.securityContext.seccompProfile": map[string]any{"type": "RuntimeDefault"}}},
		{"selinux/samples/mutation.yaml", example("selinux", "default-selinux"),
			map[string]any{"spec.containers.securityContext.seLinuxOptions": map[string]any{"level": "s1:c234,c567", "user": "sysadm_u", "role": "sysadm_r", "type": "svirt_lxc_net_t"}}},
		{"users/samples/mutation-fsGroup.yaml", users, map[string]any{"spec.securityContext.fsGroup": int64(3000)}},
		{"users/samples/mutation-mustRunAsNonRoot.yaml", users, map[string]any{"spec.containers.securityContext.runAsNonRoot": true}},
		{"users/samples/mutation-runAsGroup.yaml", users, map[string]any{"spec.containers.securityContext.runAsGroup": int64(2000)}},
		{"users/samples/mutation-runAsUser.yaml", users, map[string]any{"spec.containers.securityContext.runAsUser": int64(1000)}},
		{"users/samples/mutation-supplementalGroups.yaml", users, map[string]any{"spec.securityContext.supplementalGroups": []any{int64(3000)}}},
		// A Pod that sets runAsNonRoot and runAsUser keeps them: MustNotExist.
		{"users/samples/mutation-mustRunAsNonRoot.yaml", filepath.Join(psp, "users", "samples", "users", "example-nomutation.yaml"),
			map[string]any{"spec.containers.securityContext.runAsNonRoot": false}},
		{"users/samples/mutation-runAsUser.yaml", filepath.Join(psp, "users", "samples", "users", "example-nomutation.yaml"),
			map[string]any{"spec.containers.securityContext.runAsUser": int64(0)}},
		{"users/samples/mutation-runAsGroup.yaml", filepath.Join(psp, "users", "samples", "users", "example-nomutation.yaml"),
			map[string]any{"spec.containers.securityContext.runAsGroup": int64(2000)}},
	} {
		t.Run(tc.mutators+" on "+filepath.Base(filepath.Dir(tc.example)), func(t *testing.T) {
			objs := mutateOut(t, "", "-f", filepath.Join(psp, tc.mutators), "-f", tc.example)
			if len(objs) != 1 || objs[0].GetKind() != "Pod" {
				t.Fatalf("printed %d objects, want the Pod only", len(objs))
			}
			for path, want := range tc.want {
				if got := nested(objs[0], path); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
			// Mutated again, the Pod does not change: the sample converges.
			mutated := filepath.Join(t.TempDir(), "mutated.yaml")
			_, out, _ := run(t, "", "mutate", "-f", tc.example, "-f", filepath.Join(psp, tc.mutators))
			if err := os.WriteFile(mutated, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			if code, diff, errOut := run(t, "", "mutate", "--diff", "-f", filepath.Join(psp, tc.mutators), "-f", mutated); code != 0 || diff != "" {
				t.Errorf("a second pass changed the Pod (exit %d):\n%s%s", code, diff, errOut)
			}
		})
	}
	t.Run("all 16 together", func(t *testing.T) {
		objs := mutateOut(t, "", "-f", root)
		if len(objs) != 7 {
			t.Fatalf("printed %d objects, want the 7 example Pods", len(objs))
		}
		for _, o := range objs {
			if o.GetNamespace() != "" {
				t.Errorf("%s: printed with the namespace %q it was mutated in", o.GetName(), o.GetNamespace())
			}
			if nested(o, "spec.securityContext.seccompProfile.type") != "RuntimeDefault" {
				t.Errorf("%s: spec.securityContext = %v", o.GetName(), nested(o, "spec.securityContext"))
			}
		}
	})
}

const sidecarMutator = `apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: sidecar
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  match:
    namespaceSelector:
      matchLabels:
        sidecar: "yes"
  location: "spec.containers[name: proxy]"
  parameters:
    assign:
      value:
        name: proxy
        image: envoy
---
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: label-namespaces
spec:
  match:
    kinds:
    - apiGroups: [""]
      kinds: [Namespace]
    name: mesh-*
  location: metadata.labels.sidecar
  parameters:
    assign:
      value: "yes"
`

const meshObjects = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: mesh-a
spec:
  containers:
  - name: web
    image: nginx
---
apiVersion: v1
kind: Namespace
metadata:
  name: mesh-a
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: other
spec:
  containers:
  - name: web
    image: nginx
`

// TestMutateNamespaces: Namespaces given are mutated first, and their
// labels (mutated) select the Pods in them; everything is printed in
// input order.
func TestMutateNamespaces(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "mutators.yaml", sidecarMutator)
	objs := mutateOut(t, meshObjects, "-f", filepath.Join(dir, "mutators.yaml"), "-f", "-")
	if len(objs) != 3 || objs[0].GetNamespace() != "mesh-a" || objs[1].GetKind() != "Namespace" || objs[2].GetNamespace() != "other" {
		t.Fatalf("objects %v", objs)
	}
	if c, _, _ := unstructured.NestedSlice(objs[0].Object, "spec", "containers"); len(c) != 2 {
		t.Errorf("the Pod in mesh-a has containers %v, want the sidecar added", c)
	}
	if objs[1].GetLabels()["sidecar"] != "yes" {
		t.Errorf("the Namespace's labels %v", objs[1].GetLabels())
	}
	if c, _, _ := unstructured.NestedSlice(objs[2].Object, "spec", "containers"); len(c) != 1 {
		t.Errorf("the Pod in other has containers %v", c)
	}
	// -o json prints one JSON object per object.
	code, out, errOut := run(t, meshObjects, "mutate", "-o", "json", "-f", filepath.Join(dir, "mutators.yaml"), "-f", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	n := 0
	for dec.More() {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("-o json: %v\n%s", err, out)
		}
		n++
	}
	if n != 3 {
		t.Errorf("-o json printed %d objects, want 3", n)
	}
	// --diff prints the changed objects only.
	_, diff, _ := run(t, meshObjects, "mutate", "--diff", "-f", filepath.Join(dir, "mutators.yaml"), "-f", "-")
	if !strings.Contains(diff, "+++ Pod/mesh-a/web (mutated)") || !strings.Contains(diff, "+    name: proxy") ||
		!strings.Contains(diff, "--- Namespace/mesh-a (<stdin>#1)") || strings.Contains(diff, "Pod/other/web") {
		t.Errorf("--diff:\n%s", diff)
	}
}

// TestMutateErrors: bad input exits 1 with an error naming the file and
// the object, and prints nothing on standard output.
func TestMutateErrors(t *testing.T) {
	dir := t.TempDir()
	pod := writeFile(t, dir, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: {}\n")
	for _, tc := range []struct {
		name, mutators, want string
		args                 []string
	}{
		{name: "no input", args: []string{}, want: "no input: give at least one -f"},
		{name: "bad output", args: []string{"-o", "xml", "-f", pod}, want: `-o: "xml" is not yaml or json`},
		// As portcullis test and expand, and gator, say it.
		{name: "an empty file", args: []string{"-f", writeFile(t, dir, "empty.yaml", "---\n---\n")}, want: "no input data identified"},
		{name: "an empty directory", args: []string{"-f", t.TempDir()}, want: "no input data identified"},
		{name: "missing file", args: []string{"-f", filepath.Join(dir, "nothing.yaml")}, want: "nothing.yaml"},
		{name: "bad location", mutators: strings.Replace(sidecarMutator, `"spec.containers[name: proxy]"`, `"spec.containers[name: proxy"`, 1),
			want: `bad-location.yaml#0: Assign "sidecar": spec.location: invalid location`},
		{name: "conflict", mutators: sidecarMutator + "---\n" + strings.NewReplacer("name: sidecar", "name: other", `"spec.containers[name: proxy]"`, `spec.containers.image`, "value:\n        name: proxy\n        image: envoy", "value: x").Replace(strings.SplitN(sidecarMutator, "---", 2)[0]),
			want: "the following mutators have conflicting schemas: [Assign.mutations.gatekeeper.sh /other,Assign.mutations.gatekeeper.sh /sidecar]"},
		{name: "mutation fails", mutators: strings.Replace(strings.SplitN(sidecarMutator, "---", 2)[0], "  match:\n    namespaceSelector:\n      matchLabels:\n        sidecar: \"yes\"\n", "", 1),
			want: "pod.yaml: mutation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.mutators != "" {
				args = []string{"-f", writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml", tc.mutators), "-f", pod}
			}
			code, out, errOut := run(t, "", append([]string{"mutate"}, args...)...)
			if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, tc.want)
			}
		})
	}
}

// writeFile writes a file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTestAppliesMutators: portcullis test mutates the objects with the
// mutators given before it judges them, as the cluster would.
func TestTestAppliesMutators(t *testing.T) {
	policy := []string{"-f", "testdata/suite/template.yaml", "-f", "testdata/suite/constraint.yaml", "-f", "testdata/suite/ns_disallowed.yaml"}
	code, out, errOut := run(t, "", append([]string{"test"}, policy...)...)
	if code != 1 || !strings.Contains(out, `["ns-must-have-test"]`) {
		t.Fatalf("without the mutator: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, "", append([]string{"test", "-f", "testdata/mutation/add_test_label.yaml"}, policy...)...)
	if code != 0 || out != "" {
		t.Errorf("with the mutator: exit %d, want 0 and no violation\n%s%s", code, out, errOut)
	}
	// A bad mutator is an input error naming it.
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", strings.Replace(sidecarMutator, `"spec.containers[name: proxy]"`, `"spec.containers[name: *]"`, 1))
	code, _, errOut = run(t, "", append([]string{"test", "-f", bad}, policy...)...)
	if code != 1 || !strings.Contains(errOut, `bad.yaml#0: Assign "sidecar": spec.location: ends with the glob`) {
		t.Errorf("bad mutator: exit %d\n%s", code, errOut)
	}
}

// TestVerifyAppliesMutators: a suite's mutators, and mutators among a
// case's inventory, mutate the case's object before it is judged.
func TestVerifyAppliesMutators(t *testing.T) {
	code, out, errOut := run(t, "", "verify", "-v", "testdata/mutation/suite.yaml")
	if code != 0 || !strings.Contains(out, "--- PASS: label-added") || !strings.Contains(out, "--- PASS: mutator-in-inventory") || !strings.Contains(out, "--- PASS: refused") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

// TestMutateDiffNames: each side of a --diff header names its own object,
// so a mutator that changes the kind shows both kinds.
func TestMutateDiffNames(t *testing.T) {
	dir := t.TempDir()
	mut := writeFile(t, dir, "kind.yaml", `apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: kind
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  location: kind
  parameters:
    assign:
      value: Secret
`)
	pod := writeFile(t, dir, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\n")
	code, out, errOut := run(t, "", "mutate", "--diff", "-f", mut, "-f", pod)
	if code != 0 || !strings.Contains(out, "--- Pod/default/web (") || !strings.Contains(out, "+++ Secret/default/web (mutated)") {
		t.Errorf("exit %d, stderr %q, diff:\n%s", code, errOut, out)
	}
	// Without metadata.namespace, the header says which namespace the
	// object was taken to be in.
	pod = writeFile(t, dir, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n")
	code, out, errOut = run(t, "", "mutate", "--diff", "--namespace", "team-a", "-f", mut, "-f", pod)
	if code != 0 || !strings.Contains(out, "--- Pod/web ("+pod+", mutated in namespace team-a)\n+++ Secret/web (mutated)") {
		t.Errorf("exit %d, stderr %q, diff:\n%s", code, errOut, out)
	}
}

// TestMutateEmptyNamespaceKept: an object with metadata.namespace "" is
// mutated in --namespace, and printed with its namespace as it was.
func TestMutateEmptyNamespaceKept(t *testing.T) {
	dir := t.TempDir()
	mut := writeFile(t, dir, "mutator.yaml", `apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: owner
spec:
  location: metadata.labels.owner
  parameters:
    assign:
      value: team
`)
	pod := writeFile(t, dir, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: \"\"\n")
	code, out, errOut := run(t, "", "mutate", "-f", mut, "-f", pod)
	if code != 0 || !strings.Contains(out, "owner: team") || !strings.Contains(out, `namespace: ""`) {
		t.Errorf("exit %d, stderr %q, output:\n%s", code, errOut, out)
	}
	code, out, errOut = run(t, "", "mutate", "--diff", "-f", mut, "-f", pod)
	if code != 0 || !strings.Contains(out, "+    owner: team") || strings.Contains(out, "-  namespace") {
		t.Errorf("exit %d, stderr %q, diff:\n%s", code, errOut, out)
	}
}
