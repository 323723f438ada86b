// Package charts holds the Helm chart charts/portcullis; its tests lint it, render it and apply what it renders to a real API server.
package charts
