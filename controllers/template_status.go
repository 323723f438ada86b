package controllers

import (
	"context"
	"errors"
	"fmt"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/vap"
)

// Reasons of a template's Ready condition.
const (
	ReasonReady       = "Ready"
	ReasonPending     = "Pending"
	ReasonIngestError = "IngestError"
	ReasonCreateError = "CreateError"
	ReasonUpdateError = "UpdateError"
	ReasonError       = "Error"
)

// templateResult is what one replica found when reconciling one generation
// of a template: the errors it reports and whether the constraint CRD exists.
type templateResult struct {
	generation int64
	errors     []templatesv1.CreateCRDError
	created    bool
	crdName    string
	// crdLeft is set while a replica with LeaveCRDs waits for another to
	// create the CRD of a template it has compiled.
	crdLeft bool
	// vap is the generation of its ValidatingAdmissionPolicy, nil when
	// this replica does not generate one.
	vap *vap.GenerationStatus
}

// statusError turns an error into a byPod error with a code. Compile errors
// carry their location in the template, field:line:column.
func statusError(code string, err error) templatesv1.CreateCRDError {
	out := templatesv1.CreateCRDError{Code: code, Message: err.Error()}
	if ce, ok := errors.AsType[*engine.CompileError](err); ok {
		out.Location = ce.Field
		if ce.Row > 0 {
			out.Location = fmt.Sprintf("%s:%d:%d", ce.Field, ce.Row, ce.Col)
		}
	}
	return out
}

// templateByPod is one replica's entry in a template's status.byPod, with
// Gatekeeper's field names (frameworks' ByPodStatus lacks templateUID and
// operations; the CRD keeps unknown fields of byPod entries).
type templateByPod struct {
	ID                 string                       `json:"id,omitempty"`
	TemplateUID        types.UID                    `json:"templateUID,omitempty"`
	Operations         []string                     `json:"operations,omitempty"`
	ObservedGeneration int64                        `json:"observedGeneration,omitempty"`
	Errors             []templatesv1.CreateCRDError `json:"errors,omitempty"`
	// VAPGenerationStatus is written by replicas that generate policies.
	VAPGenerationStatus *vap.GenerationStatus `json:"vapGenerationStatus,omitempty"`
}

// templateStatus computes a template's status from its current status and
// this replica's result: it sets this replica's byPod entry, created (which
// never goes back to false, as in Gatekeeper) and the Ready condition, which
// is computed from every replica's entry for the current generation, so all
// replicas agree on it.
func templateStatus(cur map[string]any, rep Replica, uid types.UID, res templateResult) (map[string]any, error) {
	status := copyStatus(cur)
	entry, err := toUnstructuredMap(&templateByPod{
		ID: rep.ID, TemplateUID: uid, Operations: rep.SortedOperations(),
		ObservedGeneration: res.generation, Errors: res.errors, VAPGenerationStatus: res.vap,
	})
	if err != nil {
		return nil, err
	}
	setByPod(status, entry)
	created, _ := status["created"].(bool)
	if res.created && len(res.errors) == 0 && !created {
		status["created"] = true
		created = true
	}
	cond := templateReady(byPodEntries[templateByPod](status), res, created)
	if err := setCondition(status, cond); err != nil {
		return nil, err
	}
	return status, nil
}

// templateReady is the Ready condition: False if any replica reports an
// error for this generation, True once the CRD is created and none does.
func templateReady(byPod []templateByPod, res templateResult, created bool) metav1.Condition {
	cond := metav1.Condition{Type: ConditionReady, ObservedGeneration: res.generation}
	for _, p := range byPod {
		if p.ObservedGeneration != res.generation || len(p.Errors) == 0 {
			continue
		}
		e := p.Errors[0]
		cond.Status = metav1.ConditionFalse
		cond.Reason = reasonForCode(e.Code)
		cond.Message = e.Message
		if e.Location != "" {
			cond.Message = e.Location + ": " + e.Message
		}
		return cond
	}
	if !created || !res.created {
		cond.Status = metav1.ConditionFalse
		cond.Reason = ReasonPending
		cond.Message = "Waiting for the constraint CRD to be created"
		return cond
	}
	cond.Status = metav1.ConditionTrue
	cond.Reason = ReasonReady
	cond.Message = fmt.Sprintf("Constraint CRD %s is established and the template is loaded", res.crdName)
	return cond
}

func reasonForCode(code string) string {
	switch code {
	case CodeIngest:
		return ReasonIngestError
	case CodeCreate:
		return ReasonCreateError
	case CodeUpdate:
		return ReasonUpdateError
	default:
		return ReasonError
	}
}

// writeTemplateStatus writes this replica's result into the template's
// status, read live so that conditions and other replicas' entries, which
// the typed object does not carry, are kept.
func (r *TemplateReconciler) writeTemplateStatus(ctx context.Context, name string, uid types.UID, res templateResult) (bool, error) {
	w := statusWriter{
		get: func(ctx context.Context) (*unstructured.Unstructured, error) {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(templatesv1.SchemeGroupVersion.WithKind("ConstraintTemplate"))
			if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
				return nil, fmt.Errorf("getting ConstraintTemplate %s: %w", name, err)
			}
			if u.GetUID() != uid {
				return nil, fmt.Errorf("ConstraintTemplate %s was replaced (uid %s, want %s)", name, u.GetUID(), uid)
			}
			return u, nil
		},
		update: func(ctx context.Context, u *unstructured.Unstructured) error {
			if err := r.Client.Status().Update(ctx, u, client.FieldOwner(FieldManager)); err != nil {
				return fmt.Errorf("updating status of ConstraintTemplate %s: %w", name, err)
			}
			return nil
		},
	}
	return writeStatus(ctx, nil, w, func(cur map[string]any) (map[string]any, error) {
		return templateStatus(cur, r.Replica, uid, res)
	})
}
