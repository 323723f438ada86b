package readiness

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Lister is a runnable that tells the tracker which objects exist at
// startup: it lists them once (their metadata only), retrying every
// second until every list succeeds, and passes their keys to Expect. It
// runs on every replica, leader or not.
type Lister struct {
	Reader client.Reader
	// Lists are the lists' kinds, e.g. templates.gatekeeper.sh/v1
	// ConstraintTemplateList.
	Lists []schema.GroupVersionKind
	// Key is the key of the object name listed with list; nil: its name.
	Key func(list schema.GroupVersionKind, name string) string
	// What names the objects in the logs, e.g. "ConstraintTemplates".
	What string
	// Expect receives the keys, e.g. Tracker.ExpectTemplates.
	Expect func(keys []string)
}

// NeedLeaderElection is false: every replica serves from its own engine.
func (l *Lister) NeedLeaderElection() bool { return false }

// Start lists the objects and passes their keys to Expect; it returns
// nil, having expected nothing, if ctx ends first.
func (l *Lister) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("readiness")
	var keys []string
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		keys = keys[:0]
		for _, gvk := range l.Lists {
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(gvk)
			if err := l.Reader.List(ctx, list); err != nil {
				logger.Error(err, "Listing "+l.What+", will retry", "kind", gvk.Kind)
				return false, nil
			}
			for _, it := range list.Items {
				key := it.Name
				if l.Key != nil {
					key = l.Key(gvk, it.Name)
				}
				keys = append(keys, key)
			}
		}
		return true, nil
	})
	if err != nil {
		return nil // stopped before the lists succeeded
	}
	l.Expect(keys)
	logger.Info("Waiting for "+l.What+" to load", "count", len(keys))
	return nil
}
