// Package v1alpha1 is the mutations.gatekeeper.sh/v1alpha1 API: Assign, AssignMetadata and ModifySet as in v1 (served, not stored), and AssignImage, which only this version has.
// +kubebuilder:object:generate=true
// +groupName=mutations.gatekeeper.sh
package v1alpha1
