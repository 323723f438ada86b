package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AssignMetadataSpec is the label or annotation an AssignMetadata adds,
// and to which objects.
type AssignMetadataSpec struct {
	// Match selects the objects changed, with a constraint's criteria.
	Match Match `json:"match,omitempty"`
	// Location is metadata.labels.<key> or metadata.annotations.<key>.
	Location string `json:"location,omitempty"`
	// Parameters say what is assigned.
	Parameters MetadataParameters `json:"parameters,omitempty"`
}

// MetadataParameters are what an AssignMetadata assigns.
type MetadataParameters struct {
	// Assign is the value assigned: a string, or fromMetadata.
	Assign AssignField `json:"assign,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=assignmetadata,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:metadata:labels=gatekeeper.sh/system=yes

// AssignMetadata adds a label or an annotation to the objects it matches.
// It never changes one that is already there.
type AssignMetadata struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AssignMetadataSpec `json:"spec,omitempty"`
	Status MutatorStatus      `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AssignMetadataList is a list of AssignMetadata.
type AssignMetadataList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AssignMetadata `json:"items"`
}
