# skiff — see README.md. Two commands matter: `make run` and `make test`.
GO        ?= go
BIN       := bin/skiff
DATA_DIR  ?= /var/lib/skiff
GOFLAGS   ?=
export GOFLAGS

.PHONY: all build run test unit e2e bench deps vet fmt clean

all: build

# bin/skiff-pause is the pod sandbox binary; the agent wraps it in its pause
# image (without it, the agent builds one from source with the Go toolchain).
build:
	$(GO) build -trimpath -o $(BIN) ./cmd/skiff
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/skiff-pause ./test/images/pause

# Install what is missing, build, run the server in the foreground.
run: deps build
	$(BIN) server --data-dir $(DATA_DIR)

deps:
	./hack/install-deps.sh

# The whole suite: static checks, unit tests, then end-to-end tests against
# real `skiff server` processes and the real kubectl.
test: deps vet build
	$(GO) test -count=1 -timeout 20m ./internal/... ./cmd/... ./test/bench
	SKIFF_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 40m -p 1 ./test/e2e/...

unit:
	$(GO) test -count=1 ./internal/... ./cmd/... ./test/bench

e2e: build
	SKIFF_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 40m -p 1 -v ./test/e2e/...

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Prints performance figures; not part of `make test`.
bench: build
	SKIFF_BIN=$(CURDIR)/$(BIN) $(GO) run ./test/bench

clean:
	rm -rf bin
