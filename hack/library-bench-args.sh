#!/usr/bin/env bash
# Prints the -f arguments for benchmarking the gatekeeper-library: every
# template, each with its first sample constraint, and every sample object
# (allowed, disallowed, AdmissionReviews and inventory). The Go program in
# hack/library-bench-args reads the library as the tests and benchmarks do;
# it runs here, in the caller's directory, so that the paths are as given.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
(cd "$repo" && go build -o "$bin/library-bench-args" ./hack/library-bench-args)
"$bin/library-bench-args" "$@"
