// Package v1alpha2 is the wgpolicyk8s.io/v1alpha2 API of the Kubernetes Policy Working Group's policy report prototype (PolicyReport, ClusterPolicyReport), with the prototype's schema, in which the audit writes its results.
// +kubebuilder:object:generate=true
// +groupName=wgpolicyk8s.io
package v1alpha2
