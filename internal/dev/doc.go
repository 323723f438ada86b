// Package dev runs `portcullis dev`: etcd, kube-apiserver, kube-controller-manager and the manager on loopback, with their state in a data dir that survives restarts and crashes.
package dev
