package templates

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/mutation"
)

// TestMutationSamples applies each sample of mutations/ to its
// example.yaml, as `portcullis mutate` does, and checks that the objects
// come out as expected.yaml shows them, and that a second pass changes
// nothing.
func TestMutationSamples(t *testing.T) {
	entries, err := os.ReadDir("mutations")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n++
		dir := filepath.Join("mutations", e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			ctx := context.Background()
			read := func(name string) []manifest.Doc {
				docs, err := manifest.ReadPath(filepath.Join(dir, name), nil)
				if err != nil {
					t.Fatal(err)
				}
				return docs
			}
			off := mutation.NewOffline()
			off.DefaultNamespace = "default"
			for _, d := range read("mutator.yaml") {
				if err := off.AddMutator(d.Object); err != nil {
					t.Fatalf("%s: %v", d.Source, err)
				}
			}
			if off.Len() == 0 {
				t.Fatal("mutator.yaml holds no mutator")
			}
			objs, want := read("example.yaml"), read("expected.yaml")
			if len(objs) != len(want) {
				t.Fatalf("%d examples, %d expected", len(objs), len(want))
			}
			changed := 0
			for i, d := range objs {
				c, err := off.Mutate(ctx, d.Object)
				if err != nil {
					t.Fatalf("%s: %v", d.Source, err)
				}
				if c {
					changed++
				}
				if !equality.Semantic.DeepEqual(d.Object.Object, want[i].Object.Object) {
					got, _ := yaml.Marshal(d.Object.Object)
					exp, _ := yaml.Marshal(want[i].Object.Object)
					t.Errorf("%s mutated:\n%s\nwant (%s):\n%s", d.Source, got, want[i].Source, exp)
				}
				if c, err := off.Mutate(ctx, d.Object); err != nil || c {
					t.Errorf("%s: a second pass changed it (%v)", d.Source, err)
				}
			}
			if changed == 0 {
				t.Error("the mutator changed no example")
			}
		})
	}
	if n < 3 {
		t.Errorf("%d mutation samples, want the 3 at least", n)
	}
}
