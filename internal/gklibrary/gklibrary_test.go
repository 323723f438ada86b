package gklibrary_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/gklibrary"
)

func object(kind, name string) string {
	return "apiVersion: v1\nkind: " + kind + "\nmetadata:\n  name: " + name + "\n"
}

// writeLibrary writes files (path: content) below a new directory.
func writeLibrary(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestListAndRead(t *testing.T) {
	dir := writeLibrary(t, map[string]string{
		"kustomization.yaml":                          object("Kustomization", "k"),
		"general/b/template.yaml":                     object("ConstraintTemplate", "b"),
		"general/b/suite.yaml":                        object("Suite", "b"),
		"general/b/samples/s1/constraint2.yaml":       object("B", "second"),
		"general/b/samples/s1/constraint.yaml":        object("B", "first"),
		"general/b/samples/s1/example_allowed.yaml":   object("Pod", "ok") + "---\n" + object("Pod", "ok2"),
		"general/b/samples/s1/disallowed/nested.yaml": object("Pod", "nested"),
		"general/b/samples/s0/example_inventory.yaml": object("Namespace", "inv"),
		"general/a/template.yaml":                     object("ConstraintTemplate", "a"),
		"general/a/samples/s/constraint2.yaml":        object("A", "not-first"),
		"psp/c/template.yaml":                         object("ConstraintTemplate", "c"),
	})
	rel := func(paths ...string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Join(dir, filepath.FromSlash(p)))
		}
		return out
	}
	files, err := gklibrary.ListFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []gklibrary.Files{
		{Dir: rel("general/a")[0], Template: rel("general/a/template.yaml")[0], Constraints: rel("general/a/samples/s/constraint2.yaml")},
		{Dir: rel("general/b")[0], Template: rel("general/b/template.yaml")[0],
			Constraints: rel("general/b/samples/s1/constraint.yaml", "general/b/samples/s1/constraint2.yaml"),
			Objects:     rel("general/b/samples/s0/example_inventory.yaml", "general/b/samples/s1/disallowed/nested.yaml", "general/b/samples/s1/example_allowed.yaml")},
		{Dir: rel("psp/c")[0], Template: rel("psp/c/template.yaml")[0]},
	}
	if !reflect.DeepEqual(files, want) {
		t.Fatalf("ListFiles:\n got %+v\nwant %+v", files, want)
	}
	if got := files[0].FirstConstraint(); got != "" {
		t.Errorf("FirstConstraint with only a constraint2.yaml = %q, want none", got)
	}
	if got, want := files[1].FirstConstraint(), rel("general/b/samples/s1/constraint.yaml")[0]; got != want {
		t.Errorf("FirstConstraint = %q, want %q", got, want)
	}

	templates, err := gklibrary.ReadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, err := gklibrary.ReadAll(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range templates {
		if !reflect.DeepEqual(p.Files, files[i]) || p.Template.GetName() != filepath.Base(files[i].Dir) {
			t.Errorf("ReadTemplates[%d] = %+v, template %s", i, p.Files, p.Template.GetName())
		}
		if p.Constraints != nil || p.Objects != nil {
			t.Errorf("ReadTemplates[%d] read the samples", i)
		}
		if !reflect.DeepEqual(p.Template, all[i].Template) || !reflect.DeepEqual(p.Constraint, all[i].Constraint) {
			t.Errorf("ReadTemplates[%d] and ReadAll differ", i)
		}
	}
	if templates[0].Constraint != nil || templates[2].Constraint != nil || templates[1].Constraint.GetName() != "first" {
		t.Errorf("first constraints: %v, %v, %v", templates[0].Constraint, templates[1].Constraint, templates[2].Constraint)
	}
	b := all[1]
	var got []string
	for _, s := range append(b.Constraints, b.Objects...) {
		got = append(got, strings.TrimPrefix(s.File, b.Files.Dir+string(filepath.Separator))+" "+s.Object.GetName())
	}
	wantSamples := []string{
		"samples/s1/constraint.yaml first", "samples/s1/constraint2.yaml second",
		"samples/s0/example_inventory.yaml inv", "samples/s1/disallowed/nested.yaml nested",
		"samples/s1/example_allowed.yaml ok", "samples/s1/example_allowed.yaml ok2",
	}
	if !reflect.DeepEqual(got, wantSamples) {
		t.Errorf("ReadAll samples:\n got %q\nwant %q", got, wantSamples)
	}
}

func TestReadErrors(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"two templates in one file":   {"g/a/template.yaml": object("ConstraintTemplate", "a") + "---\n" + object("ConstraintTemplate", "b")},
		"two constraints in one file": {"g/a/template.yaml": object("ConstraintTemplate", "a"), "g/a/samples/s/constraint.yaml": object("A", "x") + "---\n" + object("A", "y")},
		"not YAML":                    {"g/a/template.yaml": object("ConstraintTemplate", "a"), "g/a/samples/s/example.yaml": "kind: [\n"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := gklibrary.ReadAll(writeLibrary(t, files)); err == nil {
				t.Error("no error")
			}
		})
	}
	if _, err := gklibrary.ListFiles(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ListFiles of a missing directory: no error")
	}
}

// TestListFilesThroughSymlink: a library given as a symlink to its
// directory is walked, as the Glob-based loaders before it did.
func TestListFilesThroughSymlink(t *testing.T) {
	dir := writeLibrary(t, map[string]string{"general/a/template.yaml": object("ConstraintTemplate", "a")})
	link := filepath.Join(t.TempDir(), "library")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	files, err := gklibrary.ListFiles(link)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Template != filepath.Join(link, "general", "a", "template.yaml") {
		t.Errorf("ListFiles(%s) = %+v, want the one template below the link", link, files)
	}
}
