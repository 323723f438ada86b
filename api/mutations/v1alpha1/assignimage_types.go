package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
)

// AssignImageSpec is the image an AssignImage changes, how, and in which
// objects.
type AssignImageSpec struct {
	// ApplyTo lists the groups, versions and kinds the mutator changes.
	// Required.
	ApplyTo []mutationsv1.MutationApplyTo `json:"applyTo,omitempty"`

	// Match selects the objects changed, with a constraint's criteria.
	Match mutationsv1.Match `json:"match,omitempty"`

	// Location is the path of the image string, for example
	// `spec.containers[name: main].image`.
	Location string `json:"location,omitempty"`

	// Parameters are the parts of the image set.
	Parameters AssignImageParameters `json:"parameters,omitempty"`
}

// AssignImageParameters are the parts of an image an AssignImage sets;
// at least one is required. In my.registry.io:2000/repo/app:latest the
// domain is my.registry.io:2000, the path repo/app and the tag :latest.
type AssignImageParameters struct {
	// PathTests make the mutation conditional on parts of the location
	// existing or not.
	PathTests []mutationsv1.PathTest `json:"pathTests,omitempty"`

	// AssignDomain sets the domain (registry host and port), without a
	// trailing slash.
	AssignDomain string `json:"assignDomain,omitempty"`

	// AssignPath sets the path (the repository). When it could be read as
	// starting with a domain, assignDomain is required.
	AssignPath string `json:"assignPath,omitempty"`

	// AssignTag sets the tag (starting with :) or the digest (starting
	// with @).
	AssignTag string `json:"assignTag,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=assignimage,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels=gatekeeper.sh/system=yes

// AssignImage sets the domain, path or tag of an image string in the
// objects it matches.
type AssignImage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AssignImageSpec           `json:"spec,omitempty"`
	Status mutationsv1.MutatorStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// AssignImageList is a list of AssignImage.
type AssignImageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AssignImage `json:"items"`
}
