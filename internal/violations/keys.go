package violations

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Gatekeeper's structured log keys, which SIEM queries built for Gatekeeper
// read; the Events' annotations use the same keys.
const (
	KeyProcess                      = "process"
	KeyDetails                      = "details"
	KeyEventType                    = "event_type"
	KeySemantic                     = "semantic"
	KeyAuditID                      = "audit_id"
	KeyConstraintGroup              = "constraint_group"
	KeyConstraintAPIVersion         = "constraint_api_version"
	KeyConstraintKind               = "constraint_kind"
	KeyConstraintName               = "constraint_name"
	KeyConstraintNamespace          = "constraint_namespace"
	KeyConstraintAction             = "constraint_action"
	KeyConstraintEnforcementActions = "constraint_enforcement_actions"
	KeyConstraintAnnotations        = "constraint_annotations"
	KeyConstraintStatus             = "constraint_status"
	KeyConstraintViolations         = "constraint_violations"
	KeyResourceGroup                = "resource_group"
	KeyResourceAPIVersion           = "resource_api_version"
	KeyResourceKind                 = "resource_kind"
	KeyResourceNamespace            = "resource_namespace"
	KeyResourceName                 = "resource_name"
	KeyResourceLabels               = "resource_labels"
	KeyRequestUsername              = "request_username"
)

// Values of KeyProcess and KeyEventType.
const (
	ProcessAdmission       = "admission"
	ProcessAudit           = "audit"
	EventViolation         = "violation"
	EventViolationAudited  = "violation_audited"
	EventAuditStarted      = "audit_started"
	EventConstraintAudited = "constraint_audited"
	EventAuditFinished     = "audit_finished"
)

// lastApplied is the annotation left out of constraint_annotations, as in
// Gatekeeper.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// Violation is one violation of a constraint by an object.
type Violation struct {
	Constraint *unstructured.Unstructured
	// EnforcementAction is the constraint's spec.enforcementAction.
	EnforcementAction string
	// ScopedActions are, for a scoped constraint, the actions at this
	// enforcement point; nil otherwise.
	ScopedActions []string
	Message       string
	Details       any

	Resource        schema.GroupVersionKind
	Namespace, Name string
	// UID and ResourceVersion are the object's, when known.
	UID             types.UID
	ResourceVersion string
	// Labels are the object's, logged by the audit.
	Labels map[string]string
	// Username is the requester's, for admission.
	Username string
}

// Details is what Gatekeeper logs as a violation's details: the result's
// metadata "details", else the violation's details.
func Details(metadata map[string]any, details any) any {
	if d, ok := metadata["details"]; ok {
		return d
	}
	return details
}

// Actions are the actions the violation takes: the scoped ones, else the
// enforcement action.
func (v *Violation) Actions() []string {
	if len(v.ScopedActions) > 0 {
		return v.ScopedActions
	}
	return []string{v.EnforcementAction}
}

func (v *Violation) constraint() (gvk schema.GroupVersionKind, name, namespace string) {
	if v.Constraint == nil {
		return gvk, "", ""
	}
	return v.Constraint.GroupVersionKind(), v.Constraint.GetName(), v.Constraint.GetNamespace()
}

func (v *Violation) scoped() []string {
	if v.ScopedActions == nil {
		return []string{}
	}
	return v.ScopedActions
}

// AdmissionKeys are the keys of the webhook's log line for the violation,
// Gatekeeper's under --log-denies.
func (v *Violation) AdmissionKeys() []any {
	cg, cname, _ := v.constraint()
	return []any{
		KeySemantic, true,
		KeyProcess, ProcessAdmission,
		KeyDetails, v.Details,
		KeyEventType, EventViolation,
		KeyConstraintName, cname,
		KeyConstraintGroup, cg.Group,
		KeyConstraintAPIVersion, cg.Version,
		KeyConstraintKind, cg.Kind,
		KeyConstraintAction, v.EnforcementAction,
		KeyConstraintEnforcementActions, v.scoped(),
		KeyResourceGroup, v.Resource.Group,
		KeyResourceAPIVersion, v.Resource.Version,
		KeyResourceKind, v.Resource.Kind,
		KeyResourceNamespace, v.Namespace,
		KeyResourceName, v.Name,
		KeyRequestUsername, v.Username,
	}
}

// AuditKeys are the keys of the audit's violation_audited log line; the
// run's logger carries process and audit_id.
func (v *Violation) AuditKeys() []any {
	cg, cname, cns := v.constraint()
	var annotations map[string]string
	if v.Constraint != nil {
		annotations = v.Constraint.GetAnnotations()
		delete(annotations, lastApplied)
	}
	return []any{
		KeyDetails, v.Details,
		KeyEventType, EventViolationAudited,
		KeySemantic, true,
		KeyConstraintGroup, cg.Group,
		KeyConstraintAPIVersion, cg.Version,
		KeyConstraintKind, cg.Kind,
		KeyConstraintName, cname,
		KeyConstraintNamespace, cns,
		KeyConstraintAction, v.EnforcementAction,
		KeyConstraintEnforcementActions, v.scoped(),
		KeyConstraintAnnotations, annotations,
		KeyResourceGroup, v.Resource.Group,
		KeyResourceAPIVersion, v.Resource.Version,
		KeyResourceKind, v.Resource.Kind,
		KeyResourceNamespace, v.Namespace,
		KeyResourceName, v.Name,
		KeyResourceLabels, v.Labels,
	}
}

// annotations are the Event's annotations, Gatekeeper's keys.
func (v *Violation) annotations(process, eventType string) map[string]string {
	cg, cname, cns := v.constraint()
	a := map[string]string{
		KeyProcess:                      process,
		KeyEventType:                    eventType,
		KeyConstraintGroup:              cg.Group,
		KeyConstraintAPIVersion:         cg.Version,
		KeyConstraintKind:               cg.Kind,
		KeyConstraintName:               cname,
		KeyConstraintNamespace:          cns,
		KeyConstraintAction:             v.EnforcementAction,
		KeyConstraintEnforcementActions: strings.Join(v.ScopedActions, ","),
		KeyResourceGroup:                v.Resource.Group,
		KeyResourceAPIVersion:           v.Resource.Version,
		KeyResourceKind:                 v.Resource.Kind,
		KeyResourceNamespace:            v.Namespace,
		KeyResourceName:                 v.Name,
	}
	if process == ProcessAdmission {
		a[KeyRequestUsername] = v.Username
	}
	return a
}
