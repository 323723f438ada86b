// Package v1 is the mutations.gatekeeper.sh/v1 API, the storage version of the mutators Assign, AssignMetadata and ModifySet, and the types every version and AssignImage share: match, applyTo, path tests, assigned values and status.
// +kubebuilder:object:generate=true
// +groupName=mutations.gatekeeper.sh
package v1
