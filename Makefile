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

# Installs the three PKCS#11 implementations the tests run on (SoftHSM2,
# tpm2-pkcs11 on swtpm, opencryptoki) when missing; the tests fail (never
# skip) without them.
test: deps
	$(GO) vet ./...
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

# TOKENSEAL_DEMO_TOKEN=tpm2 or opencryptoki runs it on those tokens.
demo:
	scripts/demo.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

# The manual page, generated from the command definitions (urfave/cli's
# markdown through go-md2man): man -l man/tokenseal.1
.PHONY: man
man:
	mkdir -p man
	$(GO) run ./cmd/tokenseal man > man/tokenseal.1.tmp
	mv man/tokenseal.1.tmp man/tokenseal.1

clean:
	scripts/make-token.sh stop
	rm -rf bin .demo .softhsm .tpm .opencryptoki man

# Side-by-side benchmark (cat, plain Go AES-GCM, age, gpg, openssl cms,
# tokenseal) with the issue 5 targets, then tokenseal --format cms beside
# openssl cms with the issue 15 targets; BENCH_SIZE, BENCH_QUICK=1: see
# scripts/bench.sh and scripts/bench-cms.sh.
.PHONY: bench
bench:
	scripts/bench.sh
	scripts/bench-cms.sh

# Every fuzz target in the module for FUZZTIME each (issue 7); crashers
# land in testdata/fuzz/<FuzzName>. `make test` runs the seed corpora.
FUZZTIME ?= 60s
.PHONY: fuzz
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh
