package expansion

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/api/expansion/v1alpha1"
	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// FuzzExpand feeds any templateSource and any object to Expand: it must
// return resultants or an error, never panic, and never change the object.
func FuzzExpand(f *testing.F) {
	f.Add("spec.template", `{"metadata":{"name":"d","namespace":"n"},"spec":{"template":{"metadata":{"labels":{"a":"b"}},"spec":{}}}}`)
	f.Add("spec.template", `{"spec":{"template":"x"}}`)
	f.Add("spec.template", `{"spec":{"template":{"metadata":[1]}}}`)
	f.Add("spec", `{"spec":null}`)
	f.Add("spec..template", `{}`)
	f.Add(".", `{"":{"":{}}}`)
	f.Add("metadata", `{"metadata":{"name":"loop","ownerReferences":"x"}}`)
	f.Add("a.b.c.d", `{"a":{"b":[{"c":1}]}}`)
	f.Fuzz(func(t *testing.T, source, objJSON string) {
		tm := &Template{
			Name:           "fuzz",
			ApplyTo:        []v1alpha1.ApplyTo{{Groups: []string{"apps"}, Versions: []string{"v1"}, Kinds: []string{"Deployment"}}},
			TemplateSource: source,
			GeneratedGVK:   schema.GroupVersionKind{Version: "v1", Kind: "Pod"},
		}
		s := NewSystem(nil)
		if err := s.Upsert(tm); err != nil {
			if !errors.Is(err, ErrInvalidTemplate) {
				t.Fatalf("Upsert: %v is not ErrInvalidTemplate", err)
			}
			return
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON([]byte(strings.Replace(objJSON, "{", `{"apiVersion":"apps/v1","kind":"Deployment",`, 1))); err != nil {
			return
		}
		before := obj.DeepCopy()
		res, err := s.Expand(context.Background(), obj, nil)
		if !equality(before, obj) {
			t.Fatal("Expand changed the object")
		}
		if err != nil {
			if !strings.Contains(err.Error(), `ExpansionTemplate "fuzz"`) {
				t.Fatalf("error %q does not name the template", err)
			}
			return
		}
		for _, r := range res {
			if r.Object.GetKind() != "Pod" || r.Object.GetAPIVersion() != "v1" {
				t.Fatalf("resultant of kind %s %s", r.Object.GetAPIVersion(), r.Object.GetKind())
			}
		}
	})
}

func equality(a, b *unstructured.Unstructured) bool {
	ja, err1 := a.MarshalJSON()
	jb, err2 := b.MarshalJSON()
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// FuzzReadTemplate feeds any YAML to the reading of ExpansionTemplates, as
// portcullis test, verify and expand read them: an error or a template,
// never a panic.
func FuzzReadTemplate(f *testing.F) {
	f.Add(expandDeployments)
	f.Add(expandCronJobs)
	f.Add(strings.Replace(expandJobs, "templateSource: spec.template", "templateSource: [x]", 1))
	f.Add("apiVersion: expansion.gatekeeper.sh/v1alpha1\nkind: ExpansionTemplate\nspec:\n  applyTo: {groups: x}\n")
	f.Add("apiVersion: expansion.gatekeeper.sh/v1alpha1\nkind: ExpansionTemplate\nmetadata: {name: x}\nspec:\n  generatedGVK: 3\n")
	f.Fuzz(func(t *testing.T, y string) {
		docs, err := manifest.Parse("fuzz.yaml", []byte(y))
		if err != nil {
			return
		}
		s := NewSystem(nil)
		for _, d := range docs {
			if !IsTemplate(d.Object) {
				continue
			}
			tm, err := FromUnstructured(d.Object)
			if err != nil {
				if !errors.Is(err, ErrInvalidTemplate) {
					t.Fatalf("FromUnstructured: %v is not ErrInvalidTemplate", err)
				}
				continue
			}
			if err := s.Upsert(tm); err != nil && !errors.Is(err, ErrInvalidTemplate) && !errors.Is(err, ErrCycle) {
				t.Fatalf("Upsert: %v", err)
			}
		}
	})
}
