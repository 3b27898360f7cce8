#!/usr/bin/env bash
# End-to-end demo on a project-local SoftHSM2 token: install deps if
# missing, build, make a token, provision keys, list and export them.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh

step "build bin/tokenseal"
mkdir -p bin
go build -o bin/tokenseal ./cmd/tokenseal
ts=bin/tokenseal

step "fresh project-local token in .softhsm/"
eval "$(FRESH=1 scripts/make-token.sh)"
echo "SOFTHSM2_CONF=$SOFTHSM2_CONF"
echo "TOKENSEAL_TOKEN=$TOKENSEAL_TOKEN (PIN from $TOKENSEAL_PIN_FILE)"
$ts token list

step "provision keys"
$ts key generate --label alice-rsa --type rsa-3072 --usage exchange
$ts key generate --label alice-ec --type p256 --usage exchange
$ts key generate --label alice-sign --type p256 --usage sign

step "list keys"
$ts key list

step "export public keys to .demo/"
mkdir -p .demo
for k in alice-rsa alice-ec alice-sign; do
	$ts key export --label "$k" -o ".demo/$k.pem"
done
cat .demo/alice-rsa.pem
openssl pkey -pubin -in .demo/alice-rsa.pem -noout -text 2>/dev/null | head -1 || true

# seal/open steps
# (to be filled in when `tokenseal seal` and `tokenseal open` exist:
#  seal a file to .demo/alice-rsa.pem and .demo/alice-ec.pem, signed by
#  alice-sign, then open it on the token and compare.)

step "done"
