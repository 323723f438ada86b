package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModifySetSpec is the list a ModifySet changes, how, and in which
// objects.
type ModifySetSpec struct {
	// ApplyTo lists the groups, versions and kinds the mutator changes.
	// Required.
	ApplyTo []MutationApplyTo `json:"applyTo,omitempty"`

	// Match selects the objects changed, with a constraint's criteria.
	Match Match `json:"match,omitempty"`

	// Location is the path of the list, for example
	// `spec.containers[name: main].args`.
	Location string `json:"location,omitempty"`

	// Parameters say which values are added or removed.
	Parameters ModifySetParameters `json:"parameters,omitempty"`
}

// Operation is what a ModifySet does with its values.
type Operation string

// ModifySet operations.
const (
	// MergeOp appends each value the list lacks.
	MergeOp Operation = "merge"
	// PruneOp removes every occurrence of each value.
	PruneOp Operation = "prune"
)

// ModifySetParameters are a ModifySet's values, operation and path tests.
type ModifySetParameters struct {
	// PathTests make the mutation conditional on parts of the location
	// existing or not.
	PathTests []PathTest `json:"pathTests,omitempty"`

	// Operation is merge (the default: append the values the list lacks)
	// or prune (remove them).
	// +kubebuilder:validation:Enum=merge;prune
	// +kubebuilder:default=merge
	Operation Operation `json:"operation,omitempty"`

	// Values holds the values, as values.fromList.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Values Values `json:"values,omitempty"`
}

// Values are the values of a ModifySet.
// +kubebuilder:object:generate=false
type Values struct {
	// FromList lists the values added or removed.
	FromList []any `json:"fromList,omitempty"`
}

// DeepCopyInto copies the values into out.
func (in *Values) DeepCopyInto(out *Values) {
	if in.FromList == nil {
		out.FromList = nil
		return
	}
	out.FromList = make([]any, len(in.FromList))
	for i, v := range in.FromList {
		out.FromList[i] = CopyJSON(v)
	}
}

// DeepCopy returns a copy of the values.
func (in *Values) DeepCopy() *Values {
	if in == nil {
		return nil
	}
	out := new(Values)
	in.DeepCopyInto(out)
	return out
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:path=modifyset,scope=Cluster
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:metadata:labels=gatekeeper.sh/system=yes

// ModifySet adds values to, or removes them from, a list that is a set of
// values, such as a container's args, in the objects it matches.
type ModifySet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ModifySetSpec `json:"spec,omitempty"`
	Status MutatorStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ModifySetList is a list of ModifySet.
type ModifySetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModifySet `json:"items"`
}
