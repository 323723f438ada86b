// Package expansion expands workload resources (a Deployment, a Job, a CronJob) into the resources they generate (their Pods), as Gatekeeper's ExpansionTemplates define, and reviews those resultants with source Generated, reporting their violations against the parent with Gatekeeper's "[Implied by <template>]" prefix.
package expansion
