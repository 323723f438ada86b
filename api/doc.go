// Package api holds Portcullis's own API types in versioned subpackages (Config and SyncSet are planned); ConstraintTemplate comes from the frameworks module.
package api
