// Package templates holds Portcullis's own policy library; its suites run in go test.
package templates
