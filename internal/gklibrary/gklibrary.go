// Package gklibrary reads the gatekeeper-library's layout: every
// template.yaml below the library directory (<category>/<name>/template.yaml)
// with the samples beside it (samples/<sample>/constraint*.yaml and the
// example objects). The tests, the benchmarks, hack/bench-webhook,
// hack/bench-audit and hack/library-bench-args.sh read the library through
// it; it imports nothing for tests, so that the benchmark programs may use
// it.
package gklibrary

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// DefaultDir is where the library is, relative to the repository's root:
// in shared/ beside the repository, where `make conformance`, the tests and
// the benchmarks look for it.
var DefaultDir = filepath.Join("..", "shared", "gatekeeper-library", "library")

// Files are the files of one template of the library.
type Files struct {
	// Dir is the template's directory.
	Dir string
	// Template is Dir/template.yaml.
	Template string
	// Constraints are the sample constraints, every constraint*.yaml below
	// Dir/samples, sorted.
	Constraints []string
	// Objects are every other .yaml file below Dir/samples, sorted: the
	// objects allowed and disallowed, AdmissionReviews and inventory.
	Objects []string
}

// FirstConstraint is the first of Constraints named constraint.yaml, the constraint
// the benchmarks pair with the template, or "" when there is none.
func (f Files) FirstConstraint() string {
	for _, c := range f.Constraints {
		if filepath.Base(c) == "constraint.yaml" {
			return c
		}
	}
	return ""
}

// ListFiles finds every template.yaml below dir, sorted, with its samples.
func ListFiles(dir string) ([]Files, error) {
	var templates []string
	// A trailing separator makes WalkDir follow a library that is a symlink.
	err := filepath.WalkDir(dir+string(filepath.Separator), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "template.yaml" {
			templates = append(templates, p)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the gatekeeper-library: %w", err)
	}
	sort.Strings(templates)
	out := make([]Files, 0, len(templates))
	for _, t := range templates {
		f := Files{Dir: filepath.Dir(t), Template: t}
		samples := filepath.Join(f.Dir, "samples")
		err := filepath.WalkDir(samples, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil || d.IsDir() || filepath.Ext(p) != ".yaml":
			case strings.HasPrefix(d.Name(), "constraint"):
				f.Constraints = append(f.Constraints, p)
			default:
				f.Objects = append(f.Objects, p)
			}
			return err
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading the samples of %s: %w", t, err)
		}
		sort.Strings(f.Constraints)
		sort.Strings(f.Objects)
		out = append(out, f)
	}
	return out, nil
}

// Policy is one template of the library with its samples, read.
type Policy struct {
	Files Files
	// Template is the template's one object.
	Template *unstructured.Unstructured
	// Constraint is FirstConstraint's one object, nil when there is none.
	Constraint *unstructured.Unstructured
	// Constraints are the objects of Files.Constraints, one a file; only
	// ReadAll reads them.
	Constraints []Sample
	// Objects are every object of Files.Objects, in their order; only
	// ReadAll reads them.
	Objects []Sample
}

// Sample is one object of the library and the file it comes from.
type Sample struct {
	File   string
	Object *unstructured.Unstructured
}

// ReadTemplates reads every template below dir (see ListFiles) with its
// first sample constraint, as the benchmarks load the library. A template
// or constraint file holds one object.
func ReadTemplates(dir string) ([]Policy, error) {
	return read(dir, false)
}

// ReadAll is ReadTemplates that reads every sample too: all the sample
// constraints, and every object of the other sample files.
func ReadAll(dir string) ([]Policy, error) {
	return read(dir, true)
}

func read(dir string, samples bool) ([]Policy, error) {
	files, err := ListFiles(dir)
	if err != nil {
		return nil, err
	}
	out := make([]Policy, 0, len(files))
	for _, f := range files {
		p := Policy{Files: f}
		if p.Template, err = readOne(f.Template); err != nil {
			return nil, err
		}
		if !samples {
			if first := f.FirstConstraint(); first != "" {
				if p.Constraint, err = readOne(first); err != nil {
					return nil, err
				}
			}
			out = append(out, p)
			continue
		}
		for _, c := range f.Constraints {
			u, err := readOne(c)
			if err != nil {
				return nil, err
			}
			p.Constraints = append(p.Constraints, Sample{File: c, Object: u})
			if c == f.FirstConstraint() {
				p.Constraint = u
			}
		}
		for _, o := range f.Objects {
			docs, err := manifest.ReadPath(o, nil)
			if err != nil {
				return nil, err
			}
			for _, d := range docs {
				p.Objects = append(p.Objects, Sample{File: o, Object: d.Object})
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func readOne(path string) (*unstructured.Unstructured, error) {
	docs, err := manifest.ReadPath(path, nil)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("%s: %d documents, want 1", path, len(docs))
	}
	return docs[0].Object, nil
}
