// Command portcullis is a Gatekeeper-compatible policy controller for
// Kubernetes, and the offline tools to test policies in CI.
package main

import (
	"os"

	"github.com/portcullis-dev/portcullis/cli"
)

func main() {
	os.Exit(cli.Main(cli.Args(os.Args), os.Stdin, os.Stdout, os.Stderr))
}
