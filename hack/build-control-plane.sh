#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from Go modules into
# bin/k8s (envtest's KUBEBUILDER_ASSETS layout). Binaries are cached: a second run with the same
# versions does nothing. Prebuilt binaries can't be downloaded on our machines,
# so this is the only way to get a real control plane for tests and `make dev`.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"     # k8s.io/kubernetes
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"   # go.etcd.io/etcd/server/v3
# The commands of k8s.io/kubernetes built: envtest needs kube-apiserver;
# `portcullis dev` also runs kube-controller-manager.
K8S_COMMANDS=(kube-apiserver kube-controller-manager)

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${BIN_DIR:-$root/bin}"
assets="$bin/k8s"
work="$bin/.build"
mkdir -p "$assets" "$work"

stamp_ok() { [ -x "$assets/$1" ] && [ "$(cat "$assets/.$1.version" 2>/dev/null)" = "$2" ]; }

# build_k8s builds the commands given (kube-apiserver, kube-controller-manager)
# from one wrapper module, so that they share its go.sum and every package
# the two have in common is compiled once.
build_k8s() {
  local dir="$work/kubernetes-$K8S_VERSION"
  mkdir -p "$dir"
  local staging="v0.${K8S_VERSION#v1.}"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and resolves
  # them with replace directives that only apply inside its own repo. A wrapper
  # module replaces each one with the published staging version.
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    echo "module portcullis.local/kubernetes-build"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$gomod" \
      | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } > "$dir/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    for c in "${K8S_COMMANDS[@]}"; do echo "import _ \"k8s.io/kubernetes/cmd/$c\""; done
  } > "$dir/tools.go"
  (cd "$dir" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true)
  local c t
  for c in "$@"; do
    t=$(date +%s)
    (cd "$dir" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$assets/$c" "k8s.io/kubernetes/cmd/$c")
    echo "$K8S_VERSION" > "$assets/.$c.version"
    echo "hack: built $c in $(( $(date +%s) - t ))s" >&2
  done
}

build_etcd() {
  local dir="$work/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  cat > "$dir/go.mod" <<GOMOD
module portcullis.local/etcd-build

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat > "$dir/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "$dir" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true
   cd "$dir" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$assets/etcd" go.etcd.io/etcd/server/v3)
  echo "$ETCD_VERSION" > "$assets/.etcd.version"
}

start=$(date +%s)
todo=()
k8s_todo=()
stamp_ok etcd "$ETCD_VERSION" || todo+=("etcd $ETCD_VERSION")
for c in "${K8S_COMMANDS[@]}"; do
  stamp_ok "$c" "$K8S_VERSION" || { todo+=("$c $K8S_VERSION"); k8s_todo+=("$c"); }
done
if [ ${#todo[@]} -eq 0 ]; then
  exit 0
fi
echo "hack: building control plane (${todo[*]}) into $assets; the first build takes about 5 minutes for etcd and kube-apiserver, and about 3 more for kube-controller-manager" >&2
stamp_ok etcd "$ETCD_VERSION" || build_etcd
[ ${#k8s_todo[@]} -eq 0 ] || build_k8s "${k8s_todo[@]}"
echo "hack: control plane ready in $(( $(date +%s) - start ))s: $assets" >&2
