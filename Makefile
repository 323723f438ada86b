# Portcullis developer targets. `make help` lists them.

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

LOCALBIN ?= $(CURDIR)/bin
BINARY ?= $(LOCALBIN)/portcullis

# Code generators come from the separate tools module hack/tools, which pins
# their versions (controller-tools v0.21.0, built against k8s.io v0.36).
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen

# kube-apiserver and etcd for envtest, built from source by
# hack/build-control-plane.sh (nothing can be downloaded prebuilt here).
ENVTEST_ASSETS ?= $(LOCALBIN)/k8s

# The ConstraintTemplate API is external: its CRD is generated from the
# frameworks module's types, our own types come from api/.
CRD_PATHS = {github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/...,./api/...}
# RBAC and webhook markers live in controllers/ and webhook/; only the
# directories that exist are scanned.
MARKER_DIRS = $(foreach d,controllers webhook,$(if $(wildcard $(d)),./$(d)/...))
comma := ,
space := $(subst ,, )
MARKER_PATHS = {$(subst $(space),$(comma),$(strip $(MARKER_DIRS)))}
GENERATED_DIRS = config api

# The gatekeeper library suites, in shared/ beside this repository.
SHARED ?= $(CURDIR)/../shared
GATEKEEPER_LIBRARY ?= $(SHARED)/gatekeeper-library/library

GO_TEST_FLAGS ?= -count=1 -timeout=30m

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: dev
dev: ## Bring up a local control plane with Portcullis and sample policies (not yet available).
	@echo "make dev: not yet available (issue 7)" >&2
	@exit 1

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs (config/crd/bases), RBAC (config/rbac) and webhook (config/webhook) manifests.
	rm -f config/crd/bases/*.yaml
	$(CONTROLLER_GEN) crd paths="$(CRD_PATHS)" output:crd:artifacts:config=config/crd/bases
ifneq ($(strip $(MARKER_DIRS)),)
	$(CONTROLLER_GEN) rbac:roleName=manager-role webhook \
		paths="$(MARKER_PATHS)" \
		output:rbac:artifacts:config=config/rbac output:webhook:artifacts:config=config/webhook
endif

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods for the types in api/.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: verify-gen
verify-gen: manifests generate ## Regenerate, then fail if config/ or api/ differ from what git has.
	@git diff --exit-code -- $(GENERATED_DIRS) || { echo "verify-gen: generated files are stale; run 'make manifests generate' and commit the result" >&2; exit 1; }
	@untracked="$$(git ls-files --others --exclude-standard -- $(GENERATED_DIRS))"; \
	if [ -n "$$untracked" ]; then \
		echo "verify-gen: generated files not tracked by git (git add them):" >&2; echo "$$untracked" >&2; exit 1; \
	fi
	@echo "verify-gen: generated files are up to date"

.PHONY: fmt
fmt: ## Run gofmt on the code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: vet ## Run go vet and check formatting (gofmt).
	@unformatted="$$(find . -name '*.go' -not -path './bin/*' -not -path './.git/*' -not -path './.dev/*' -not -path './tmp/*' -print0 | xargs -0 -r gofmt -l)"; \
	if [ -n "$$unformatted" ]; then \
		echo "lint: these files need gofmt (run 'make fmt'):" >&2; echo "$$unformatted" >&2; exit 1; \
	fi

##@ Test

.PHONY: test
test: envtest-assets ## Build what the tests need, run every Go test (envtest included), the conformance suites, lint and verify-gen.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test $(GO_TEST_FLAGS) ./...
	$(MAKE) --no-print-directory conformance
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory verify-gen

.PHONY: conformance
conformance: ## Run the gatekeeper-library suites with `portcullis verify` (skipped without ../shared).
	@if [ ! -d "$(GATEKEEPER_LIBRARY)" ]; then \
		echo "conformance: skipped: $(GATEKEEPER_LIBRARY) not found (it comes from shared/ beside this repository)"; \
		exit 0; \
	fi; \
	$(MAKE) --no-print-directory build; \
	echo "$(BINARY) verify $(GATEKEEPER_LIBRARY)/..."; \
	"$(BINARY)" verify "$(GATEKEEPER_LIBRARY)/..."

.PHONY: bench
bench: ## Run the policy engine benchmarks.
	go test -run '^$$' -bench . -benchmem ./engine/...

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver and etcd into bin/k8s for envtest (cached; the first build takes ~5-8 minutes).
	BIN_DIR="$(LOCALBIN)" hack/build-control-plane.sh

##@ Build

.PHONY: build
build: ## Build the portcullis binary into bin/portcullis.
	go build -o $(BINARY) .

.PHONY: install
install: ## Install the CRDs into the cluster of the current kubeconfig.
	kubectl apply -k config/crd

##@ Tools

$(CONTROLLER_GEN): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen into bin/ at the version pinned in hack/tools/go.mod.
