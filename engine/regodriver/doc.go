// Package regodriver is a frameworks constraint driver for Rego templates that compiles each template and prepares its query once, so reviews only evaluate.
package regodriver
