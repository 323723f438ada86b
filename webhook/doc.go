// Package webhook serves the validating admission webhook: /v1/admit judges every request through the engine, /v1/admitlabel guards the ignore label and /v1/admitpolicy refuses ConstraintTemplates and constraints that cannot work; it also manages the serving certificate and the ValidatingWebhookConfiguration.
package webhook
