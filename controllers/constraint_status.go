package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portcullis-dev/portcullis/vap"
)

// Reasons of a constraint's Ready condition.
const (
	ReasonEnforced    = "Enforced"
	ReasonNotEnforced = "NotEnforced"
)

// constraintByPod is one replica's entry in a constraint's status.byPod,
// with Gatekeeper's field names.
type constraintByPod struct {
	ID string `json:"id"`
	// ConstraintUID is the UID of the constraint the entry was written for.
	ConstraintUID types.UID `json:"constraintUID,omitempty"`
	// Operations are what the replica runs (Gatekeeper's --operation).
	Operations         []string      `json:"operations,omitempty"`
	Enforced           bool          `json:"enforced"`
	Errors             []StatusError `json:"errors,omitempty"`
	ObservedGeneration int64         `json:"observedGeneration"`
	// EnforcementPointsStatus has the vap.k8s.io entry, written by the
	// replicas that generate bindings.
	EnforcementPointsStatus []vap.EnforcementPointStatus `json:"enforcementPointsStatus,omitempty"`
}

// constraintStatus computes a constraint's status from its current status
// and this replica's result: its byPod entry and the Ready condition, True
// when every replica that observed the current generation enforces it.
// Everything else (audit's totalViolations and violations) is kept.
func constraintStatus(cur map[string]any, rep Replica, res constraintResult) (map[string]any, error) {
	status := copyStatus(cur)
	entry, err := toUnstructuredMap(&constraintByPod{
		ID: rep.ID, ConstraintUID: res.uid, Operations: rep.SortedOperations(),
		ObservedGeneration: res.generation, Enforced: res.enforced, Errors: res.errors,
		EnforcementPointsStatus: res.enforcementPoints(),
	})
	if err != nil {
		return nil, err
	}
	setByPod(status, entry)
	if err := setConstraintReady(status, res.generation); err != nil {
		return nil, err
	}
	return status, nil
}

// enforcementPoints is the byPod entry's enforcementPointsStatus.
func (res constraintResult) enforcementPoints() []vap.EnforcementPointStatus {
	if res.vap == nil {
		return nil
	}
	return []vap.EnforcementPointStatus{*res.vap}
}

// setConstraintReady sets the Ready condition of a constraint at generation
// from its byPod entries.
func setConstraintReady(status map[string]any, generation int64) error {
	return setReady(status, generation, "constraint")
}

// writeConstraintStatus writes this replica's result into the constraint's
// status; u comes from the watch's store, and a conflict reads it live.
func (r *ConstraintReconciler) writeConstraintStatus(ctx context.Context, u *unstructured.Unstructured, res constraintResult) (bool, error) {
	w := resourceWriter(r.Dynamic.Resource(ConstraintGVR(u.GetKind())), u.GetKind(), u.GetName(), u.GetUID())
	return writeStatus(ctx, u, w, func(cur map[string]any) (map[string]any, error) {
		return constraintStatus(cur, r.Replica, res)
	})
}
