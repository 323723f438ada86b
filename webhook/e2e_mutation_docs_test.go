package webhook_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// docsMutators are the examples of Gatekeeper's mutation documentation
// (website/docs/mutation.md), as written there.
var docsMutators = []string{`
apiVersion: mutations.gatekeeper.sh/v1
kind: AssignMetadata
metadata:
  name: demo-annotation-owner
spec:
  match:
    scope: Namespaced
  location: "metadata.annotations.owner"
  parameters:
    assign:
      value: "admin"
`, `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: demo-privileged
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  match:
    scope: Namespaced
    kinds:
    - apiGroups: ["*"]
      kinds: ["Pod"]
    namespaces: ["bar"]
  location: "spec.containers[name:foo].securityContext.privileged"
  parameters:
    assign:
      value: false
    pathTests:
    - subPath: "spec.containers[name:foo]"
      condition: MustExist
`, `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: demo-image-pull-policy
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  match:
    scope: Namespaced
    kinds:
    - apiGroups: ["*"]
      kinds: ["Pod"]
    excludedNamespaces: ["system"]
  location: "spec.containers[name:*].imagePullPolicy"
  parameters:
    assign:
      value: Always
`, `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: demo-env-create-only
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
    operations: ["CREATE"]  # Only apply on resource creation
  match:
    scope: Namespaced
    kinds:
    - apiGroups: ["*"]
      kinds: ["Pod"]
  location: "spec.containers[name:*].env[name:DEPLOYMENT_TIMESTAMP].value"
  parameters:
    assign:
      value: "2024-01-01T00:00:00Z"
`, `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: demo-sidecar
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  match:
    scope: Namespaced
    kinds:
    - apiGroups: ["*"]
      kinds: ["Pod"]
  location: "spec.containers[name:networking]"
  parameters:
    assign:
      value:
        name: "networking"
        imagePullPolicy: Always
        image: quay.io/foo/bar:latest
        command: ["/bin/bash", "-c", "sleep INF"]
`, `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: demo-dns-policy
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  match:
    scope: Namespaced
    kinds:
    - apiGroups: ["*"]
      kinds: ["Pod"]
  location: "spec.dnsPolicy"
  parameters:
    assign:
      value: None
`, `
apiVersion: mutations.gatekeeper.sh/v1
kind: Assign
metadata:
  name: demo-dns-config
spec:
  applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]
  match:
    scope: Namespaced
    kinds:
    - apiGroups: ["*"]
      kinds: ["Pod"]
  location: "spec.dnsConfig"
  parameters:
    assign:
      value:
        nameservers:
        - 1.2.3.4
`, `
apiVersion: mutations.gatekeeper.sh/v1alpha1
kind: AssignImage
metadata:
  name: add-nginx-digest
spec:
  applyTo:
  - groups: [ "" ]
    kinds: [ "Pod" ]
    versions: [ "v1" ]
  location: "spec.containers[name:nginx].image"
  parameters:
    assignTag: "@sha256:abcde67890123456789abc345678901a"
  match:
    source: "All"
    scope: Namespaced
    kinds:
    - apiGroups: [ "*" ]
      kinds: [ "Pod" ]
`}

const docsPod = `apiVersion: v1
kind: Pod
metadata:
  name: nginx-docs
  namespace: %s
spec:
  containers:
  - name: nginx
    image: nginx
  - name: foo
    image: foo:1
`

// TestMutationDocsExamples: every example of Gatekeeper's mutation
// documentation, through the real kube-apiserver: `kubectl apply
// --dry-run=server -o yaml` of a Pod shows each mutation, and applying
// what it printed again changes nothing.
func TestMutationDocsExamples(t *testing.T) {
	needEnv(t)
	for _, ns := range []string{"bar", "system"} {
		mustCreate(t, env.Client, namespace(ns, nil))
	}
	for _, doc := range docsMutators {
		createMutator(t, doc)
	}
	dir := t.TempDir()
	apply := func(t *testing.T, file string) *unstructured.Unstructured {
		t.Helper()
		out := env.Kubectl(t, "apply", "--dry-run=server", "-o", "yaml", "-f", file)
		return testenv.Parse(t, out)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	container := func(u *unstructured.Unstructured, name string) map[string]any {
		list, _, _ := unstructured.NestedSlice(u.Object, "spec", "containers")
		for _, c := range list {
			if m, _ := c.(map[string]any); m["name"] == name {
				return m
			}
		}
		return nil
	}

	t.Run("namespace bar", func(t *testing.T) {
		pod := apply(t, write("bar.yaml", fmt.Sprintf(docsPod, "bar")))
		if pod.GetAnnotations()["owner"] != "admin" {
			t.Errorf("annotations %v: want owner: admin (demo-annotation-owner)", pod.GetAnnotations())
		}
		if sc, _ := container(pod, "foo")["securityContext"].(map[string]any); sc["privileged"] != false {
			t.Errorf("container foo securityContext %v: want privileged false (demo-privileged)", sc)
		}
		if container(pod, "nginx")["securityContext"] != nil {
			t.Errorf("container nginx got a securityContext: %v", container(pod, "nginx"))
		}
		for _, c := range []string{"nginx", "foo", "networking"} {
			m := container(pod, c)
			if m == nil {
				t.Fatalf("no container %s (demo-sidecar): %v", c, pod.Object["spec"])
			}
			if m["imagePullPolicy"] != "Always" {
				t.Errorf("container %s imagePullPolicy %v (demo-image-pull-policy)", c, m["imagePullPolicy"])
			}
			// demo-sidecar, applied after demo-env-create-only (mutators
			// go by kind, then name), puts its own value in place of the
			// networking container on every pass: no env there.
			env, _ := m["env"].([]any)
			if c == "networking" {
				if env != nil {
					t.Errorf("container networking env %v, want none", env)
				}
				continue
			}
			if len(env) != 1 || !reflect.DeepEqual(env[0], map[string]any{"name": "DEPLOYMENT_TIMESTAMP", "value": "2024-01-01T00:00:00Z"}) {
				t.Errorf("container %s env %v (demo-env-create-only)", c, env)
			}
		}
		if img := container(pod, "nginx")["image"]; img != "nginx@sha256:abcde67890123456789abc345678901a" {
			t.Errorf("nginx image %v (add-nginx-digest)", img)
		}
		if img := container(pod, "networking")["image"]; img != "quay.io/foo/bar:latest" {
			t.Errorf("networking image %v", img)
		}
		if cmd := container(pod, "networking")["command"]; !reflect.DeepEqual(cmd, []any{"/bin/bash", "-c", "sleep INF"}) {
			t.Errorf("networking command %v", cmd)
		}
		spec := pod.Object["spec"].(map[string]any)
		if spec["dnsPolicy"] != "None" || !reflect.DeepEqual(spec["dnsConfig"], map[string]any{"nameservers": []any{"1.2.3.4"}}) {
			t.Errorf("dnsPolicy %v, dnsConfig %v (demo-dns-policy, demo-dns-config)", spec["dnsPolicy"], spec["dnsConfig"])
		}

		// Applied again, as printed, nothing changes.
		clean := pod.DeepCopy()
		for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"} {
			unstructured.RemoveNestedField(clean.Object, "metadata", f)
		}
		unstructured.RemoveNestedField(clean.Object, "status")
		out, err := clean.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		again := apply(t, write("again.json", string(out)))
		for _, f := range []string{"spec"} {
			if !reflect.DeepEqual(again.Object[f], pod.Object[f]) {
				t.Errorf("the second apply changed %s:\nfirst  %v\nsecond %v", f, pod.Object[f], again.Object[f])
			}
		}
		// kubectl apply records what it applied; the rest must not move.
		a1, a2 := pod.GetAnnotations(), again.GetAnnotations()
		delete(a1, "kubectl.kubernetes.io/last-applied-configuration")
		delete(a2, "kubectl.kubernetes.io/last-applied-configuration")
		if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(again.GetLabels(), pod.GetLabels()) {
			t.Errorf("the second apply changed the metadata: %v %v", again.GetAnnotations(), again.GetLabels())
		}
	})

	t.Run("namespace system", func(t *testing.T) {
		pod := apply(t, write("system.yaml", fmt.Sprintf(docsPod, "system")))
		if sc := container(pod, "foo")["securityContext"]; sc != nil {
			t.Errorf("container foo outside bar got a securityContext: %v", sc)
		}
		if p := container(pod, "foo")["imagePullPolicy"]; p != "IfNotPresent" {
			t.Errorf("container foo:1 in system has imagePullPolicy %v: want the API server's default, IfNotPresent (demo-image-pull-policy excludes system)", p)
		}
		if pod.GetAnnotations()["owner"] != "admin" {
			t.Errorf("annotations %v", pod.GetAnnotations())
		}
	})
}
