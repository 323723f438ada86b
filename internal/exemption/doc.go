// Package exemption holds the namespaces that Portcullis never judges, as
// the webhook and the audit share them (--exempt-namespace,
// --exempt-namespace-prefix and --exempt-namespace-suffix).
package exemption
