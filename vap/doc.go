// Package vap generates a ValidatingAdmissionPolicy for each ConstraintTemplate with K8sNativeValidation (CEL) code and a ValidatingAdmissionPolicyBinding for each of its constraints, as Gatekeeper does, so that the API server enforces them in process with the webhook as the backup.
package vap
