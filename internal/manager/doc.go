// Package manager builds and runs `portcullis manager`: the policy engine, its controllers, health and readiness checks and metrics, in one controller-runtime manager.
package manager
