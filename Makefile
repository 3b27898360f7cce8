# tokenseal: make demo, make test.
GO ?= go
TEST_TIMEOUT ?= 10m

.PHONY: all build test demo fmt deps vet clean

all: build

deps:
	scripts/install-deps.sh

build:
	mkdir -p bin
	$(GO) build -o bin/tokenseal ./cmd/tokenseal

# Installs SoftHSM2 when missing; the tests fail (never skip) without it.
test: deps
	$(GO) vet ./...
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

demo:
	scripts/demo.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin .demo .softhsm

# Side-by-side benchmark (cat, plain Go AES-GCM, age, gpg, openssl cms,
# tokenseal) with the issue 5 targets; BENCH_SIZE, BENCH_QUICK=1: see
# scripts/bench.sh.
.PHONY: bench
bench:
	scripts/bench.sh
