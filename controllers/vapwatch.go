package controllers

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/portcullis-dev/portcullis/vap"
)

// watchWhenServed adds the watches of generated policies or bindings
// (what) once the API server is known to serve them: the runnable it adds
// retries a failed discovery with a bounded backoff
// (vap.Reconciler.WaitAvailable) rather than deciding once, at set-up,
// that there is nothing to watch. It runs on every replica.
func watchWhenServed(mgr ctrl.Manager, v *vap.Reconciler, what string, watch func() error) error {
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		ok, err := v.WaitAvailable(ctx)
		if err != nil || !ok {
			return nil // stopping, or not served: nothing to watch
		}
		if err := watch(); err != nil {
			return fmt.Errorf("watching %s: %w", what, err)
		}
		mgr.GetLogger().Info("Watching " + what)
		return nil
	}))
}

// everyReplica is a runnable that runs on every replica, leader or not.
type everyReplica func(ctx context.Context) error

// Start runs f.
func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection is false: every replica runs it.
func (everyReplica) NeedLeaderElection() bool { return false }
