// Package readiness tracks whether the engine holds every ConstraintTemplate and constraint that existed at startup, and the first sync of every kind synced into data.inventory.
package readiness
