package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AssignSpec is what an Assign changes, where, and in which objects.
type AssignSpec struct {
	// ApplyTo lists the groups, versions and kinds the mutator changes.
	// Required.
	ApplyTo []MutationApplyTo `json:"applyTo,omitempty"`

	// Match selects the objects changed, with a constraint's criteria.
	Match Match `json:"match,omitempty"`

	// Location is the path assigned, for example
	// `spec.containers[name: main].imagePullPolicy`. It may not start with
	// metadata (AssignMetadata changes labels and annotations).
	Location string `json:"location,omitempty"`

	// Parameters say what is assigned and when.
	Parameters Parameters `json:"parameters,omitempty"`
}

// Parameters are what an Assign assigns, and its path tests.
type Parameters struct {
	// PathTests make the mutation conditional on parts of the location
	// existing or not.
	PathTests []PathTest `json:"pathTests,omitempty"`

	// Assign is the value assigned.
	Assign AssignField `json:"assign,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=assign,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:metadata:labels=gatekeeper.sh/system=yes

// Assign sets a value at a location of the objects it matches, outside
// metadata: a field, an element of a keyed list, or an object.
type Assign struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AssignSpec    `json:"spec,omitempty"`
	Status MutatorStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AssignList is a list of Assign.
type AssignList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Assign `json:"items"`
}
