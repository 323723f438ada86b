// Package testenv starts a real kube-apiserver and etcd (envtest) with Portcullis's CRDs installed, for tests.
package testenv
