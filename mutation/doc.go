// Package mutation applies Gatekeeper's mutators (Assign, AssignMetadata, ModifySet, AssignImage) to objects, in order and until the object stops changing, and detects mutators that disagree on a kind's schema.
package mutation
