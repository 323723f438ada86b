// Package violations logs the violations the webhook and the audit find, and emits them as Kubernetes Events, with Gatekeeper's keys, reasons and annotations.
package violations
