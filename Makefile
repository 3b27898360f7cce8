# tokenseal: make demo, make test, make install.
GO ?= go
TEST_TIMEOUT ?= 10m
# The version --version prints: git describe of this tree (a tag, commits
# since it and the commit; "dev" outside a git checkout).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# make install PREFIX=/usr DESTDIR=/tmp/pkg: the binary, the man page and
# the bash, zsh and fish completions, the last three made by the binary.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man/man1
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

.PHONY: all build test demo fmt deps vet clean install install-files uninstall

all: build

deps:
	scripts/install-deps.sh

build:
	mkdir -p bin
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/tokenseal ./cmd/tokenseal

install: build
	$(MAKE) install-files TOKENSEAL=bin/tokenseal

# install-files installs the binary TOKENSEAL names, with what it makes
# of itself (never reading a user's config file while it does).
TOKENSEAL ?= bin/tokenseal
install-files:
	install -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(MANDIR)" "$(DESTDIR)$(BASHCOMPDIR)" "$(DESTDIR)$(ZSHCOMPDIR)" "$(DESTDIR)$(FISHCOMPDIR)"
	install -m 0755 "$(TOKENSEAL)" "$(DESTDIR)$(BINDIR)/tokenseal"
	TOKENSEAL_CONFIG=/dev/null "$(TOKENSEAL)" man > "$(DESTDIR)$(MANDIR)/tokenseal.1"
	TOKENSEAL_CONFIG=/dev/null "$(TOKENSEAL)" completion bash > "$(DESTDIR)$(BASHCOMPDIR)/tokenseal"
	TOKENSEAL_CONFIG=/dev/null "$(TOKENSEAL)" completion zsh > "$(DESTDIR)$(ZSHCOMPDIR)/_tokenseal"
	TOKENSEAL_CONFIG=/dev/null "$(TOKENSEAL)" completion fish > "$(DESTDIR)$(FISHCOMPDIR)/tokenseal.fish"
	chmod 0644 "$(DESTDIR)$(MANDIR)/tokenseal.1" "$(DESTDIR)$(BASHCOMPDIR)/tokenseal" "$(DESTDIR)$(ZSHCOMPDIR)/_tokenseal" "$(DESTDIR)$(FISHCOMPDIR)/tokenseal.fish"

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/tokenseal" "$(DESTDIR)$(MANDIR)/tokenseal.1" "$(DESTDIR)$(BASHCOMPDIR)/tokenseal" "$(DESTDIR)$(ZSHCOMPDIR)/_tokenseal" "$(DESTDIR)$(FISHCOMPDIR)/tokenseal.fish"

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
	TOKENSEAL_CONFIG=/dev/null $(GO) run -ldflags "$(LDFLAGS)" ./cmd/tokenseal man > man/tokenseal.1.tmp
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
