// Package path parses the location language of mutators, such as spec.containers[name: foo].image, and holds their path tests.
package path
