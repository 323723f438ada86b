package vap

import "fmt"

// States of a template's vapGenerationStatus and of a constraint's
// vap.k8s.io enforcementPointsStatus, Gatekeeper's.
const (
	StateGenerated = "generated"
	StateError     = "error"
	StateWaiting   = "waiting"
)

// GenerationStatus is a template's status.byPod[].vapGenerationStatus:
// whether this replica generated its policy for generation
// ObservedGeneration, and why not (Warning) when State is error, or what
// it left out (operations the webhook does not judge) when generated.
type GenerationStatus struct {
	State              string `json:"state,omitempty"`
	ObservedGeneration int64  `json:"observedGeneration,omitempty"`
	Warning            string `json:"warning,omitempty"`
}

// EnforcementPointStatus is one entry of a constraint's
// status.byPod[].enforcementPointsStatus; the binding's has
// EnforcementPoint vap.k8s.io.
type EnforcementPointStatus struct {
	EnforcementPoint   string `json:"enforcementPoint"`
	State              string `json:"state"`
	Message            string `json:"message,omitempty"`
	ObservedGeneration int64  `json:"observedGeneration,omitempty"`
}

// notGenerated is the warning of a policy that could not be generated.
func notGenerated(format string, args ...any) *GenerationStatus {
	return &GenerationStatus{State: StateError, Warning: "ValidatingAdmissionPolicy is not generated: " + fmt.Sprintf(format, args...)}
}
