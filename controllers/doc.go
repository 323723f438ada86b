// Package controllers holds the reconcilers that turn ConstraintTemplates into constraint kinds and feed templates and constraints to the engine.
package controllers
