package mutation_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/portcullis-dev/portcullis/mutation"
)

// The examples of Gatekeeper's mutation documentation, each on a Pod.
// They are in testdata/gatekeeper-docs, as written there (the webhook's
// end-to-end test applies them through the API server too).

// docsExample reads the example mutator named name.
func docsExample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "gatekeeper-docs", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestAssignMetadataAnnotation(t *testing.T) {
	s := system(t, mutation.Options{}, docsExample(t, "demo-annotation-owner"))
	out, changed := mutate(t, s, obj(t, nginxPod), namespace("bar", nil), mutation.Create)
	if !changed || out.GetAnnotations()["owner"] != "admin" {
		t.Fatalf("annotations = %v, changed %t; want owner: admin", out.GetAnnotations(), changed)
	}
	// Never overwrites.
	in := obj(t, nginxPod)
	in.SetAnnotations(map[string]string{"owner": "someone"})
	out, changed = mutate(t, s, in, namespace("bar", nil), mutation.Create)
	if changed || out.GetAnnotations()["owner"] != "someone" {
		t.Errorf("an existing annotation was changed: %v", out.GetAnnotations())
	}
	// Not cluster-scoped objects (scope: Namespaced).
	ns := obj(t, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bar\n")
	if _, changed := mutate(t, s, ns, namespace("bar", nil), mutation.Create); changed {
		t.Error("a Namespace was annotated by a Namespaced mutator")
	}
}

func TestAssignPrivilegedPathTest(t *testing.T) {
	s := system(t, mutation.Options{}, docsExample(t, "demo-privileged"))
	out, changed := mutate(t, s, obj(t, nginxPod), namespace("bar", nil), mutation.Create)
	if !changed || field(t, out, "spec", "containers", 1, "securityContext", "privileged") != false {
		t.Fatalf("containers = %v", field(t, out, "spec", "containers"))
	}
	if field(t, out, "spec", "containers", 0, "securityContext") != nil {
		t.Errorf("the nginx container was changed: %v", field(t, out, "spec", "containers", 0))
	}
	// Without a container foo, MustExist keeps one from being created.
	p := obj(t, nginxPod)
	_ = unstructuredRemoveContainer(p, 1)
	if _, changed := mutate(t, s, p, namespace("bar", nil), mutation.Create); changed {
		t.Error("a container foo was created despite MustExist")
	}
	// Other namespaces are left alone.
	p = obj(t, nginxPod)
	p.SetNamespace("other")
	if _, changed := mutate(t, s, p, namespace("other", nil), mutation.Create); changed {
		t.Error("a Pod outside namespace bar was mutated")
	}
}

func unstructuredRemoveContainer(p interface{ UnstructuredContent() map[string]any }, i int) error {
	spec := p.UnstructuredContent()["spec"].(map[string]any)
	list := spec["containers"].([]any)
	spec["containers"] = append(list[:i:i], list[i+1:]...)
	return nil
}

func TestAssignImagePullPolicyExceptSystem(t *testing.T) {
	s := system(t, mutation.Options{}, docsExample(t, "demo-image-pull-policy"))
	out, _ := mutate(t, s, obj(t, nginxPod), namespace("bar", nil), mutation.Create)
	for i := range 2 {
		if got := field(t, out, "spec", "containers", i, "imagePullPolicy"); got != "Always" {
			t.Errorf("container %d imagePullPolicy = %v", i, got)
		}
	}
	p := obj(t, nginxPod)
	p.SetNamespace("system")
	if _, changed := mutate(t, s, p, namespace("system", nil), mutation.Create); changed {
		t.Error("a Pod in namespace system was mutated")
	}
}

func TestAssignOperations(t *testing.T) {
	s := system(t, mutation.Options{}, docsExample(t, "demo-env-create-only"))
	out, changed := mutate(t, s, obj(t, nginxPod), namespace("bar", nil), mutation.Create)
	want := []any{map[string]any{"name": "DEPLOYMENT_TIMESTAMP", "value": "2024-01-01T00:00:00Z"}}
	if !changed || !reflect.DeepEqual(field(t, out, "spec", "containers", 0, "env"), want) {
		t.Errorf("on CREATE env = %v, want %v", field(t, out, "spec", "containers", 0, "env"), want)
	}
	for _, op := range []mutation.Operation{mutation.Update, mutation.None, "DELETE"} {
		if _, changed := mutate(t, s, obj(t, nginxPod), namespace("bar", nil), op); changed {
			t.Errorf("a CREATE-only mutator applied on %q", op)
		}
	}
}

func TestAssignSidecar(t *testing.T) {
	s := system(t, mutation.Options{}, docsExample(t, "demo-sidecar"))
	out, changed := mutate(t, s, obj(t, nginxPod), namespace("bar", nil), mutation.Create)
	sidecar := map[string]any{"name": "networking", "imagePullPolicy": "Always", "image": "quay.io/foo/bar:latest", "command": []any{"/bin/bash", "-c", "sleep INF"}}
	if !changed || !reflect.DeepEqual(field(t, out, "spec", "containers", 2), sidecar) {
		t.Fatalf("containers = %v", field(t, out, "spec", "containers"))
	}
	// Applied again, it replaces the element and adds none.
	again, changed := mutate(t, s, out, namespace("bar", nil), mutation.Create)
	if changed || len(field(t, again, "spec", "containers").([]any)) != 3 {
		t.Errorf("second pass: changed %t, containers %v", changed, field(t, again, "spec", "containers"))
	}
}

func TestAssignDNS(t *testing.T) {
	s := system(t, mutation.Options{}, docsExample(t, "demo-dns-policy"), docsExample(t, "demo-dns-config"))
	out, _ := mutate(t, s, obj(t, nginxPod), namespace("bar", nil), mutation.Create)
	if field(t, out, "spec", "dnsPolicy") != "None" || !reflect.DeepEqual(field(t, out, "spec", "dnsConfig"), map[string]any{"nameservers": []any{"1.2.3.4"}}) {
		t.Errorf("spec = %v", out.Object["spec"])
	}
}

func TestAssignImageDigest(t *testing.T) {
	s := system(t, mutation.Options{}, docsExample(t, "add-nginx-digest"))
	out, _ := mutate(t, s, obj(t, nginxPod), namespace("bar", nil), mutation.Create)
	if got := field(t, out, "spec", "containers", 0, "image"); got != "nginx@sha256:abcde67890123456789abc345678901a" {
		t.Errorf("image = %v", got)
	}
	if got := field(t, out, "spec", "containers", 1, "image"); got != "foo:1" {
		t.Errorf("container foo's image = %v", got)
	}
}

func TestModifySetPrune(t *testing.T) {
	s := system(t, mutation.Options{}, docsExample(t, "remove-err-logging"))
	p := obj(t, nginxPod)
	field(t, p, "spec", "containers", 0).(map[string]any)["args"] = []any{"--v=2", "--alsologtostderr", "-x", "--alsologtostderr"}
	out, changed := mutate(t, s, p, namespace("bar", nil), mutation.Create)
	if !changed || !reflect.DeepEqual(field(t, out, "spec", "containers", 0, "args"), []any{"--v=2", "-x"}) {
		t.Errorf("args = %v", field(t, out, "spec", "containers", 0, "args"))
	}
	if field(t, out, "spec", "containers", 1, "args") != nil {
		t.Errorf("a prune created args: %v", field(t, out, "spec", "containers", 1))
	}
}
