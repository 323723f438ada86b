// Package v1alpha1 is the config.gatekeeper.sh/v1alpha1 API: the Config that lists the kinds to sync into data.inventory, the namespaces each process skips, and the requests to trace.
// +kubebuilder:object:generate=true
// +groupName=config.gatekeeper.sh
package v1alpha1
