package verify

import (
	"errors"
	"fmt"
	"os"

	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// ErrNotAnExpansion is returned for a test's expansion file that holds
// something other than ExpansionTemplates, in gator's words.
var ErrNotAnExpansion = errors.New("not an Expansion Template")

// testExpansion is a test's ExpansionTemplates.
type testExpansion struct {
	templates []*expansion.Template
	// plain expands with no mutator.
	plain *expansion.System
}

// loadExpansion reads a test's expansion file, as gator's ReadExpansions
// and NewExpander do: one or more ExpansionTemplates, and nothing else,
// every one valid and none forming a cycle. Its errors name the file.
func loadExpansion(dir, rel string) (*testExpansion, error) {
	p := suitePath(dir, rel)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading ExpansionTemplate from %q: %w", p, err)
	}
	docs, err := manifest.Parse(p, data)
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", p, err)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%w: %q defines no objects", ErrNotAnExpansion, p)
	}
	x := &testExpansion{plain: expansion.NewSystem(nil)}
	for _, d := range docs {
		if !expansion.IsTemplate(d.Object) {
			return nil, fmt.Errorf("%w: %q: it holds %s %s %q", ErrNotAnExpansion, d.Source, d.Object.GetAPIVersion(), d.Object.GetKind(), d.Object.GetName())
		}
		t, err := expansion.FromUnstructured(d.Object)
		if err == nil {
			err = x.plain.Upsert(t)
		}
		if err != nil {
			return nil, fmt.Errorf("error upserting template %s (%s): %w", d.Object.GetName(), d.Source, err)
		}
		x.templates = append(x.templates, t)
	}
	return x, nil
}

// system returns the test's expansion system, whose resultants m
// mutates (nil: none); nil without ExpansionTemplates.
func (x *testExpansion) system(m expansion.Mutator) (*expansion.System, error) {
	if x == nil {
		return nil, nil
	}
	if m == nil {
		return x.plain, nil
	}
	sys := expansion.NewSystem(m)
	for _, t := range x.templates {
		// Upserted without error into plain already.
		if err := sys.Upsert(t); err != nil {
			return nil, fmt.Errorf("ExpansionTemplate %s: %w", t.Name, err)
		}
	}
	return sys, nil
}
