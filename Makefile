# quietwatch: four small stages joined by pipes. See README.md.
GO      ?= go
BIN     ?= bin
STAGES  := fastparse correlate notify block share

.PHONY: all build test check bench demo e2e fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(STAGES))

# The README's test command: installs and starts what the real-component
# tests need (as root; see scripts/test-deps), then runs every test with the
# race detector.
test:
	scripts/test-deps
	$(GO) test -race -timeout 18m ./...

# Static checks .ci/run adds to the tests.
check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt wants to rewrite:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# Whole-process timings on generated logs, plus the Go benchmarks.
bench: build
	scripts/bench

demo: build
	scripts/demo

# The quick local end-to-end runs: the whole pipeline with a fast.log
# replayer instead of Suricata, as the unit runs it and as installed (root:
# network namespaces, iptables, Postfix).
e2e:
	scripts/test-deps
	$(GO) test -count=1 -v -run 'TestReplay|TestInstalled' ./internal/e2e

# Runs each parser's fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	scripts/fuzz $(FUZZTIME)

clean:
	rm -rf $(BIN)
