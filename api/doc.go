// Package api holds Portcullis's own API types in versioned subpackages: config/v1alpha1 (Config), syncset/v1alpha1 (SyncSet), mutations/{v1,v1beta1,v1alpha1} (the mutators), expansion/v1alpha1 and v1beta1 (ExpansionTemplate) and wgpolicyk8s/v1alpha2 (PolicyReport, ClusterPolicyReport, which the audit writes); ConstraintTemplate comes from the frameworks module.
package api
