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
// (website/docs/mutation.md), as written there, which the mutation
// package's tests also run.
func docsMutators(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, name := range []string{
		"demo-annotation-owner", "demo-privileged", "demo-image-pull-policy", "demo-env-create-only",
		"demo-sidecar", "demo-dns-policy", "demo-dns-config", "add-nginx-digest",
	} {
		data, err := os.ReadFile(filepath.Join("..", "mutation", "testdata", "gatekeeper-docs", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(data))
	}
	return out
}

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
	for _, doc := range docsMutators(t) {
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
