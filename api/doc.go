// Package api holds Portcullis's own API types in versioned subpackages: config/v1alpha1 (Config) and syncset/v1alpha1 (SyncSet); ConstraintTemplate comes from the frameworks module.
package api
