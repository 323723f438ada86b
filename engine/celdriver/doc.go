// Package celdriver is a frameworks constraint driver for the
// K8sNativeValidation (CEL) engine of ConstraintTemplates, with
// Gatekeeper's semantics. It compiles expressions with the apiserver's
// ValidatingAdmissionPolicy packages (the composited compiler, match
// conditions and cost limits), so expressions, libraries, cost budgets and
// error messages behave as in the apiserver and in Gatekeeper, and
// evaluates them as the apiserver's validating policy validator does, with
// the review converted once for all constraints, and the variables that
// read no params evaluated once per review (see compiled;
// TestMatchesValidator compares the two).
//
// A source is {validations[{expression, message, messageExpression}],
// failurePolicy, matchCondition[{name, expression}], variables[{name,
// expression}], generateVAP}. Expressions see object, oldObject (object is
// null on a DELETE), request, namespaceObject and variables, with the
// built-in variables.anyObject (object, or oldObject on a DELETE) and
// variables.params (the constraint's spec.parameters); only variable
// expressions see params, the constraint itself.
//
// With CacheSize, a constraint's decisions are remembered, keyed by the
// values its template's expressions can read (readset.go, cachekey.go):
// the pods of a ReplicaSet are judged once by a template that does not
// read their names, as engine/regodriver does for Rego.
package celdriver
