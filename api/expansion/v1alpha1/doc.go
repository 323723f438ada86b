// Package v1alpha1 is the expansion.gatekeeper.sh/v1alpha1 API, the storage version of the ExpansionTemplate, which makes policies on generated kinds (Pods) judge the workloads that generate them (Deployments, Jobs, CronJobs).
// +kubebuilder:object:generate=true
// +groupName=expansion.gatekeeper.sh
package v1alpha1
