#!/usr/bin/env bash
# Prints the -f arguments for benchmarking the gatekeeper-library: every
# template, each with its first sample constraint, and every sample object
# (allowed, disallowed, AdmissionReviews and inventory).
set -euo pipefail
lib="${1:-../shared/gatekeeper-library/library}"
[ -d "$lib" ] || { echo "no gatekeeper-library at $lib" >&2; exit 1; }
find "$lib" -name template.yaml | sort | while read -r t; do
  dir=$(dirname "$t")
  printf -- '-f %s ' "$t"
  first=$(find "$dir/samples" -name constraint.yaml 2>/dev/null | sort | head -1)
  [ -n "$first" ] && printf -- '-f %s ' "$first"
  find "$dir/samples" -name '*.yaml' ! -name 'constraint*.yaml' 2>/dev/null | sort | while read -r o; do
    printf -- '-f %s ' "$o"
  done
done
echo
