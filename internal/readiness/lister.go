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

// Lister is a runnable that tells the tracker which objects of one kind
// exist at startup: it lists them once (their metadata only), retrying
// every second until the list succeeds, and passes their names to Expect.
// It runs on every replica, leader or not.
type Lister struct {
	Reader client.Reader
	// List is the list's kind, e.g. templates.gatekeeper.sh/v1
	// ConstraintTemplateList.
	List schema.GroupVersionKind
	// What names the objects in the logs, e.g. "ConstraintTemplates".
	What string
	// Expect receives the names, e.g. Tracker.ExpectTemplates.
	Expect func(names []string)
}

// NeedLeaderElection is false: every replica serves from its own engine.
func (l *Lister) NeedLeaderElection() bool { return false }

// Start lists the objects and passes their names to Expect; it returns
// nil, having expected nothing, if ctx ends first.
func (l *Lister) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("readiness")
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(l.List)
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		if err := l.Reader.List(ctx, list); err != nil {
			logger.Error(err, "Listing "+l.What+", will retry")
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil // stopped before the list succeeded
	}
	names := make([]string, 0, len(list.Items))
	for _, it := range list.Items {
		names = append(names, it.Name)
	}
	l.Expect(names)
	logger.Info("Waiting for "+l.What+" to load", "count", len(names))
	return nil
}
