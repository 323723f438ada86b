package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
)

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=assign,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels=gatekeeper.sh/system=yes

// Assign sets a value at a location of the objects it matches, outside
// metadata: a field, an element of a keyed list, or an object.
type Assign struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   mutationsv1.AssignSpec    `json:"spec,omitempty"`
	Status mutationsv1.MutatorStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AssignList is a list of Assign.
type AssignList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Assign `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=assignmetadata,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels=gatekeeper.sh/system=yes

// AssignMetadata adds a label or an annotation to the objects it matches.
// It never changes one that is already there.
type AssignMetadata struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   mutationsv1.AssignMetadataSpec `json:"spec,omitempty"`
	Status mutationsv1.MutatorStatus      `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AssignMetadataList is a list of AssignMetadata.
type AssignMetadataList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AssignMetadata `json:"items"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=modifyset,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels=gatekeeper.sh/system=yes

// ModifySet adds values to, or removes them from, a list that is a set of
// values, such as a container's args, in the objects it matches.
type ModifySet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   mutationsv1.ModifySetSpec `json:"spec,omitempty"`
	Status mutationsv1.MutatorStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ModifySetList is a list of ModifySet.
type ModifySetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModifySet `json:"items"`
}
