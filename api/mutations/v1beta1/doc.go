// Package v1beta1 is the mutations.gatekeeper.sh/v1beta1 API: Assign, AssignMetadata and ModifySet as in v1 (served, not stored).
// +kubebuilder:object:generate=true
// +groupName=mutations.gatekeeper.sh
package v1beta1
