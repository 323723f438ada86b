// Package engine owns policy evaluation: the frameworks/constraint client, the
// admission.k8s.gatekeeper.sh target, constraint matching and reviews. The
// webhook, the audit, the controllers and the CLI all judge objects through it.
package engine
