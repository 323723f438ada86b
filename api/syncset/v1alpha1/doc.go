// Package v1alpha1 is the syncset.gatekeeper.sh/v1alpha1 API: the SyncSet, a cluster-scoped list of kinds to sync into data.inventory.
// +kubebuilder:object:generate=true
// +groupName=syncset.gatekeeper.sh
package v1alpha1
