package cli

import (
	"fmt"
	"io"

	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// mutationGroup is the API group of Gatekeeper's mutators.
const mutationGroup = "mutations.gatekeeper.sh"

// loadExpansion builds an expansion system from the ExpansionTemplates
// among docs, as gator's NewExpander does: a template that does not
// validate or that closes a cycle is an error naming its file. Nil when
// there are none.
func loadExpansion(docs []manifest.Doc) (*expansion.System, error) {
	var sys *expansion.System
	for _, d := range docs {
		if !expansion.IsTemplate(d.Object) {
			continue
		}
		if sys == nil {
			sys = expansion.NewSystem(nil)
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

// warnMutators says on w that the mutators among docs are not applied to
// expanded resources: Portcullis's expansion has no mutation system yet.
func warnMutators(w io.Writer, docs []manifest.Doc) {
	for _, d := range docs {
		if d.Object.GroupVersionKind().Group == mutationGroup {
			fmt.Fprintf(w, "warning: %s: %s %q is not applied to expanded resources: portcullis does not run mutators yet\n", d.Source, d.Object.GetKind(), d.Object.GetName())
		}
	}
}
