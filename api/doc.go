// Package api holds Portcullis's own API types in versioned subpackages: config/v1alpha1 (Config), syncset/v1alpha1 (SyncSet) and expansion/v1alpha1 and v1beta1 (ExpansionTemplate); ConstraintTemplate comes from the frameworks module.
package api
