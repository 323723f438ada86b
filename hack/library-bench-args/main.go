// Command library-bench-args prints the -f arguments for benchmarking the
// gatekeeper-library with `portcullis bench`: every template, each with
// its first sample constraint, and every sample object (allowed,
// disallowed, AdmissionReviews and inventory). It reads the library as the
// tests and benchmarks do (internal/gklibrary); hack/library-bench-args.sh
// runs it.
//
//	go run ./hack/library-bench-args [LIBRARY]
//
// LIBRARY defaults to ../shared/gatekeeper-library/library
// (gklibrary.DefaultDir).
package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/portcullis-dev/portcullis/internal/gklibrary"
)

func main() {
	dir := gklibrary.DefaultDir
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := run(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("no gatekeeper-library at %s", dir)
	}
	lib, err := gklibrary.ListFiles(dir)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	for _, f := range lib {
		fmt.Fprintf(w, "-f %s ", f.Template)
		if c := f.FirstConstraint(); c != "" {
			fmt.Fprintf(w, "-f %s ", c)
		}
		for _, o := range f.Objects {
			fmt.Fprintf(w, "-f %s ", o)
		}
	}
	fmt.Fprintln(w)
	return w.Flush()
}
