#!/usr/bin/env bash
# End-to-end demo on a project-local token: install deps if missing,
# build, make a token, provision keys, export them, seal a file signed by
# the sender's token key, open it on the token, and show that a replay and
# a tampered envelope are refused.
#
# TOKENSEAL_DEMO_TOKEN chooses the token: softhsm (default, SoftHSM2 in
# .softhsm/), tpm2 (tpm2-pkcs11 on the swtpm TPM simulator in .tpm/,
# stopped at the end) or opencryptoki (the machine's soft token, which is
# initialized afresh: what was on it is erased). Keys are what the token
# makes: a TPM has no ECDH, opencryptoki no EC at all.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${TOKENSEAL_DEMO_TOKEN:-softhsm}"

step() { printf '\n==> %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh

step "build bin/tokenseal"
mkdir -p bin
go build -o bin/tokenseal ./cmd/tokenseal
ts=bin/tokenseal

step "fresh project-local $kind token"
eval "$(FRESH=1 TOKEN_KIND="$kind" scripts/make-token.sh)"
if [ "$kind" = tpm2 ]; then
	trap 'scripts/make-token.sh stop' EXIT
fi
echo "TOKENSEAL_MODULE=$TOKENSEAL_MODULE"
echo "TOKENSEAL_TOKEN=$TOKENSEAL_TOKEN (PIN from $TOKENSEAL_PIN_FILE)"
$ts token list

step "provision keys: what this token makes"
keys="alice-rsa alice-sign"
$ts key generate --label alice-rsa --type rsa-3072 --usage exchange
if $ts key generate --label alice-ec --type p256 --usage exchange; then
	keys="$keys alice-ec"
else
	echo "(refused, as it should be on this token: see the line above)"
fi
$ts key generate --label alice-sign --type p256 --usage sign ||
	$ts key generate --label alice-sign --type rsa-3072 --usage sign

step "list keys"
$ts key list

step "export public keys to .demo/"
mkdir -p .demo
rm -f .demo/alice-*.pem
recipients=()
for k in $keys; do
	$ts key export --label "$k" -o ".demo/$k.pem"
	[ "$k" = alice-sign ] || recipients+=(-r ".demo/$k.pem")
done
cat .demo/alice-rsa.pem
openssl pkey -pubin -in .demo/alice-rsa.pem -noout -text 2>/dev/null | head -1 || true

# seal/open steps
export TOKENSEAL_STATE_DIR="$PWD/.demo/state"
rm -rf "$TOKENSEAL_STATE_DIR" .demo/message.txt .demo/message.tseal .demo/message.out .demo/tampered.*

step "seal a message to ${recipients[*]}, signed by alice-sign"
head -c 3000000 /dev/urandom | base64 > .demo/message.txt
$ts seal --sign-with alice-sign "${recipients[@]}" -o .demo/message.tseal .demo/message.txt
ls -l .demo/message.txt .demo/message.tseal

step "trust the sender, then open on the token"
$ts trust add alice .demo/alice-sign.pem
$ts --verbose open -o .demo/message.out .demo/message.tseal 2>&1 | grep -E 'path|serial|level=(WARN|ERROR)' || true
cmp .demo/message.txt .demo/message.out && echo "plaintext matches"

step "replay the same envelope: refused (exit 5)"
set +e
$ts open -o .demo/replayed.out .demo/message.tseal; code=$?
set -e
echo "exit code $code"; [ "$code" -eq 5 ]

step "tamper with one byte: refused (exit 4), nothing written"
$ts seal --sign-with alice-sign "${recipients[@]}" -o .demo/tampered.tseal .demo/message.txt
printf '\x00' | dd of=.demo/tampered.tseal bs=1 seek=70000 conv=notrunc status=none
set +e
$ts open -o .demo/tampered.out .demo/tampered.tseal; code=$?
set -e
echo "exit code $code"; [ "$code" -eq 4 ] && [ ! -e .demo/tampered.out ]

step "the replay ledger"
$ts ledger show

step "done"
