// Package datasync syncs the kinds listed by the Config and the SyncSets into the engine's data.inventory for referential policies, and serves the Config's namespace exclusions and request traces.
package datasync
