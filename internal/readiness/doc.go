// Package readiness tracks whether the engine holds every ConstraintTemplate and constraint that existed at startup.
package readiness
