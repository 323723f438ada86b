// Package libengine builds a policy engine holding the gatekeeper-library,
// for the benchmarks (hack/bench-webhook, hack/bench-audit and the
// webhook's). It is apart from gklibrary so that the engine's own tests may
// read the library with gklibrary.
package libengine

import (
	"context"
	"fmt"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/gklibrary"
)

// New returns an engine with opts holding every template of lib and each
// template's first sample constraint (gklibrary.Policy.Constraint), and
// the number of constraints it holds.
func New(ctx context.Context, opts engine.Options, lib []gklibrary.Policy) (*engine.Engine, int, error) {
	eng, err := engine.New(opts)
	if err != nil {
		return nil, 0, err
	}
	constraints := 0
	for _, p := range lib {
		ct, err := engine.ParseTemplate(p.Template)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", p.Files.Template, err)
		}
		if err := eng.AddTemplate(ctx, ct); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", p.Files.Template, err)
		}
		if p.Constraint == nil {
			continue
		}
		if err := eng.AddConstraint(ctx, p.Constraint); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", p.Files.FirstConstraint(), err)
		}
		constraints++
	}
	return eng, constraints, nil
}
