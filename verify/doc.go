// Package verify runs gator-format test suites (kind: Suite,
// apiVersion: test.gatekeeper.sh/v1alpha1) against the policy engine.
package verify
