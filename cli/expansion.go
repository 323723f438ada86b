package cli

import (
	"fmt"
	"io"

	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// loadExpansion builds an expansion system from the ExpansionTemplates
// among docs, as gator's NewExpander does: a template that does not
// validate or that closes a cycle is an error naming its file. Resultants
// are mutated by mutator (the mutators given; nil for none) before they
// are judged. Objects of the templates' group that are likely mistakes
// are warned of on warn. Nil when there are no templates.
func loadExpansion(docs []manifest.Doc, mutator expansion.Mutator, warn io.Writer) (*expansion.System, error) {
	var sys *expansion.System
	for _, d := range docs {
		// A likely mistake in the kind or version is taken as gator takes
		// it, and said.
		if m := expansion.Mistake(d.Object); m != "" {
			fmt.Fprintf(warn, "warning: %s: %s\n", d.Source, m)
		}
		if !expansion.IsTemplate(d.Object) {
			continue
		}
		if sys == nil {
			sys = expansion.NewSystem(mutator)
		}
		t, err := expansion.FromUnstructured(d.Object)
		if err == nil {
			err = sys.Upsert(t)
		}
		if err != nil {
			return nil, fmt.Errorf("error creating expander: error upserting template %s (%s): %w", d.Object.GetName(), d.Source, err)
		}
	}
	return sys, nil
}
