// Package metrics registers the Prometheus collectors of the packages that export metrics, once per process.
package metrics
