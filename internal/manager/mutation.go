package manager

import (
	"fmt"
	"slices"

	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/portcullis-dev/portcullis/controllers"
	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/mutation"
)

// MutationOptions configure what the mutation system does beyond applying
// mutators.
type MutationOptions struct {
	// Annotations adds gatekeeper.sh/mutation-id and
	// gatekeeper.sh/mutations to every object mutated
	// (--mutation-annotations).
	Annotations bool
	// LogMutations logs every object mutated, with the mutators applied
	// (--log-mutations).
	LogMutations bool
}

// AddFlags binds the options to Gatekeeper's flags.
func (o *MutationOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Annotations, "mutation-annotations", o.Annotations, "add the gatekeeper.sh/mutation-id and gatekeeper.sh/mutations annotations to every object mutated")
	fs.BoolVar(&o.LogMutations, "log-mutations", o.LogMutations, "log every object mutated, with the mutators applied in each iteration")
}

// mutationOperations are Gatekeeper's operations that need the mutators
// loaded: any of them makes a replica load them.
var mutationOperations = []Operation{OperationMutationController, OperationMutationStatus, OperationMutationWebhook}

// mutationEnabled reports whether this replica loads the mutators: with
// any of the mutation operations, as in Gatekeeper.
func (o *Options) mutationEnabled() bool {
	for _, op := range mutationOperations {
		if len(o.Operations) == 0 || slices.Contains(o.Operations, op) {
			return true
		}
	}
	return false
}

// setupMutation adds the mutation system and the mutator controllers.
func (m *Manager) setupMutation(dyn dynamic.Interface) error {
	if !m.opts.mutationEnabled() {
		return nil
	}
	metrics, err := mutation.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	m.mutation = mutation.NewSystem(mutation.Options{
		Annotations:  m.opts.Mutation.Annotations,
		LogMutations: m.opts.Mutation.LogMutations,
		Log:          m.mgr.GetLogger().WithName("mutation"),
		Metrics:      metrics,
	})
	r := &controllers.Mutators{
		Client:  m.mgr.GetClient(),
		Reader:  m.mgr.GetAPIReader(),
		Dynamic: dyn,
		System:  m.mutation,
		Tracker: m.tracker,
		Replica: m.replica(),
	}
	if err := r.SetupWithManager(m.mgr); err != nil {
		return fmt.Errorf("setting up the mutator controllers: %w", err)
	}
	return nil
}

// expansionMutator applies the mutators to what ExpansionTemplates
// generate before it is judged, as Gatekeeper's expansion does; none
// when this replica runs no mutation operation (Gatekeeper's mutation
// system is empty then).
func (m *Manager) expansionMutator() expansion.Mutator {
	if m.mutation == nil {
		return nil
	}
	return m.mutation.ForExpansion()
}

// Mutation is the mutation system the mutator controllers fill; nil when
// this replica runs no mutation operation.
func (m *Manager) Mutation() *mutation.System { return m.mutation }
