# nook's build and test entry points. 'make test' and 'make demo' work on a
# fresh Debian 12 machine: as root they install what they need first (see
# hack/test-deps.sh); as an ordinary user they run directly and, where a
# prerequisite is missing, fail with the command that fixes it.

# Go from Debian or from go.dev (/usr/local/go).
export PATH := $(PATH):/usr/local/go/bin
GO        ?= go
TAGS      := exclude_graphdriver_btrfs
GOBUILD   := CGO_ENABLED=1 $(GO) build -tags $(TAGS)
GOTEST    := CGO_ENABLED=1 $(GO) test -tags $(TAGS)
TEST_USER ?= nooktest
SOLO_USER ?= nooksolo
FUZZTIME  ?= 30s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/nook-containers/nook/commands.Version=$(VERSION)

# Library packages: everything but the end-to-end suite.
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v '/e2e$$')
IS_ROOT   := $(shell [ "$$(id -u)" -eq 0 ] && echo 1)
# As root, prerequisites are installed; otherwise they are only checked.
PREREQS   := $(if $(IS_ROOT),test-deps,check-prereqs)

export TEST_USER SOLO_USER

.PHONY: all build test test-unit test-e2e test-race demo bench lint vet fmt-check fuzz docs \
	test-deps check-prereqs e2e-bin clean

all: build

## build: bin/nook (cgo; btrfs support left out, it needs libbtrfs headers)
build:
	$(GOBUILD) -ldflags "$(LDFLAGS)" -o bin/nook .

## test: everything CI runs: set-up, build, lint, unit tests (race), e2e as root and rootless
test: $(PREREQS)
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory fmt-check vet
	$(MAKE) --no-print-directory test-unit
	$(MAKE) --no-print-directory test-e2e

## test-unit: go test -race of the library packages
test-unit:
	$(GOTEST) -race -count=1 $(UNIT_PKGS)

## test-e2e: the end-to-end suite against bin/nook (as root: root, TEST_USER and SOLO_USER)
test-e2e: build e2e-bin
	hack/e2e.sh

e2e-bin:
	$(GOTEST) -c -o bin/e2e.test ./e2e

## test-race: unit tests and the e2e suite with a race-enabled nook binary
test-race: $(PREREQS)
	$(GOTEST) -race -count=1 $(UNIT_PKGS)
	$(GOBUILD) -race -ldflags "$(LDFLAGS)" -o bin/nook .
	$(MAKE) --no-print-directory e2e-bin
	hack/e2e.sh

## demo: the main job end to end: image, build, run with a published port, push and pull through a local registry (as root: set up, then run as TEST_USER)
demo: $(PREREQS) build
	hack/demo.sh

## bench: benchmarks beside podman (bench/run.sh)
bench: $(PREREQS) build
	bench/run.sh

## lint: gofmt, go vet, go mod tidy
lint: fmt-check vet
	$(GO) mod tidy -diff

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt -w needed for:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet -tags $(TAGS) ./...

## fuzz: every Fuzz target of the module for FUZZTIME each
fuzz:
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

## docs: regenerate docs/commands.md from the command tree
docs:
	$(GOTEST) ./commands -run '^TestDocs$$' -count=1 -update

## test-deps: (root) install packages, /dev/net/tun, create TEST_USER and SOLO_USER
test-deps:
	hack/test-deps.sh

check-prereqs:
	@hack/check-prereqs.sh

clean:
	rm -rf bin
