// Package e2e holds end-to-end tests that run the whole manager against a real kube-apiserver.
package e2e
