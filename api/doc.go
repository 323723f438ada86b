// Package api holds Portcullis's own API types in versioned subpackages: config/v1alpha1 (Config), syncset/v1alpha1 (SyncSet) and mutations/{v1,v1beta1,v1alpha1} (the mutators); ConstraintTemplate comes from the frameworks module.
package api
