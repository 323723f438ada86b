package datasync

import (
	"errors"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/runtime/schema"

	configv1alpha1 "github.com/portcullis-dev/portcullis/api/config/v1alpha1"
	syncsetv1alpha1 "github.com/portcullis-dev/portcullis/api/syncset/v1alpha1"
)

// errIncompleteEntry is the error of a listed kind without version or kind.
var errIncompleteEntry = errors.New("version and kind are required")

// desiredState is what the Config and the SyncSets ask for.
type desiredState struct {
	// kinds are the kinds to sync, sorted, each once.
	kinds []schema.GroupVersionKind
	// listedBy names the objects listing each kind, invalid ones included.
	listedBy map[schema.GroupVersionKind][]string
	// invalid are the entries that cannot be synced whatever the cluster
	// serves, with why.
	invalid    map[schema.GroupVersionKind]error
	exclusions Exclusions
	traces     []configv1alpha1.Trace
}

// desired computes the kinds to sync, the union of the Config's syncOnly
// and every SyncSet's gvks, with the Config's exclusions and traces. cfg
// is nil when there is no Config.
func desired(cfg *configv1alpha1.Config, sets []syncsetv1alpha1.SyncSet) desiredState {
	d := desiredState{listedBy: map[schema.GroupVersionKind][]string{}, invalid: map[schema.GroupVersionKind]error{}}
	add := func(gvk schema.GroupVersionKind, by string) {
		d.listedBy[gvk] = append(d.listedBy[gvk], by)
		if gvk.Version == "" || gvk.Kind == "" {
			d.invalid[gvk] = fmt.Errorf("%s lists %q: %w", by, kindName(gvk), errIncompleteEntry)
		}
	}
	if cfg != nil {
		by := "Config " + cfg.Namespace + "/" + cfg.Name
		for _, e := range cfg.Spec.Sync.SyncOnly {
			add(e.GroupVersionKind(), by)
		}
		d.exclusions = NewExclusions(cfg.Spec.Match)
		d.traces = cfg.Spec.Validation.Traces
	}
	for i := range sets {
		by := "SyncSet " + sets[i].Name
		for _, e := range sets[i].Spec.GVKs {
			add(e.GroupVersionKind(), by)
		}
	}
	for gvk := range d.listedBy {
		if _, bad := d.invalid[gvk]; !bad {
			d.kinds = append(d.kinds, gvk)
		}
	}
	sort.Slice(d.kinds, func(i, j int) bool { return kindName(d.kinds[i]) < kindName(d.kinds[j]) })
	return d
}

// kindNames returns the names of kinds, as readiness knows them.
func kindNames(kinds []schema.GroupVersionKind) []string {
	out := make([]string, len(kinds))
	for i, gvk := range kinds {
		out[i] = kindName(gvk)
	}
	return out
}
