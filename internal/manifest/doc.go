// Package manifest reads Kubernetes objects from YAML and JSON files, with
// errors that name the file and the document.
package manifest
