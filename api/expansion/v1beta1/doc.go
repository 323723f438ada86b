// Package v1beta1 is the expansion.gatekeeper.sh/v1beta1 API: the ExpansionTemplate as Gatekeeper's controller reads it, with the same fields as v1alpha1 (the version stored).
// +kubebuilder:object:generate=true
// +groupName=expansion.gatekeeper.sh
package v1beta1
