#!/usr/bin/env bash
# CMS benchmark (issue 15), run by `make bench` after scripts/bench.sh:
# `tokenseal seal/open --format cms` on a SoftHSM2 token beside `openssl
# cms` with the same token key (through OpenSSL's PKCS#11 engine) on one
# input, in one run, and tokenseal's own envelope for the memory target.
# Every command runs BENCH_RUNS times, the commands interleaved round by
# round so that a noisy neighbour hits all of them; the report gives
# medians. Peak RSS is GNU time's %M (KiB) of each run (the median is
# shown). Nothing here is a test: the script exits 0 when a target is
# missed and 1 only when a measurement failed.
#
#   scripts/bench-cms.sh                  # 1 GiB, 5 runs
#   BENCH_QUICK=1 scripts/bench-cms.sh    # 64 MiB, 3 runs
#   BENCH_SIZE=256MiB BENCH_RUNS=3 scripts/bench-cms.sh
#
# Environment: BENCH_SIZE (default 1GiB, 64MiB with BENCH_QUICK=1; K/M/G
# and KiB/MiB/GiB are binary), BENCH_RUNS (default 5, 3 quick),
# BENCH_TMPDIR (default $TMPDIR or /tmp), BENCH_KEEP=1 keeps the
# temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'bench-cms: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'bench-cms: %s\n' "$*" >&2; }

to_bytes() {
	local v=$1 n u
	n=${v%%[!0-9]*}
	u=${v#"$n"}
	case "$u" in
	"" | B) echo "$n" ;;
	K | KiB | k | KB) echo $((n << 10)) ;;
	M | MiB | MB) echo $((n << 20)) ;;
	G | GiB | GB) echo $((n << 30)) ;;
	*) die "bad size $v" ;;
	esac
}

if [ "${BENCH_QUICK:-0}" = 1 ]; then
	size=$(to_bytes "${BENCH_SIZE:-64MiB}")
	runs=${BENCH_RUNS:-3}
else
	size=$(to_bytes "${BENCH_SIZE:-1GiB}")
	runs=${BENCH_RUNS:-5}
fi
command -v openssl >/dev/null || die "openssl not found (scripts/install-deps.sh)"
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found (scripts/install-deps.sh)"
module=""
for p in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
	[ -f "$p" ] && module=$p && break
done
[ -n "$module" ] || die "SoftHSM2 not found (scripts/install-deps.sh)"

work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bench-cms.XXXXXX")
cleanup() { if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

# As installed (copied), not as the Go linker left it: a freshly linked
# binary shows more RSS for the same bytes.
log "building tokenseal"
go build -o "$work/tokenseal.new" ./cmd/tokenseal
cp "$work/tokenseal.new" "$work/tokenseal"
rm "$work/tokenseal.new"
ts=$work/tokenseal

log "a throwaway SoftHSM2 token: an RSA-3072 exchange key with a certificate, a P-256 signing key"
mkdir -p "$work/softhsm/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
	"$work/softhsm/tokens" >"$work/softhsm/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
label=bench-cms-$$
softhsm2-util --init-token --free --label "$label" --so-pin 5678-so --pin 1234-user --module "$module" >/dev/null
(umask 077 && printf '1234-user\n' >"$work/user.pin")
export TOKENSEAL_MODULE=$module TOKENSEAL_TOKEN=$label TOKENSEAL_PIN_FILE=$work/user.pin TOKENSEAL_CONFIG=/dev/null
export TOKENSEAL_STATE_DIR=$work/state-seal TOKENSEAL_QUIET=1
"$ts" key generate --label r --type rsa-3072 --usage exchange >&2
"$ts" key generate --label s --type p256 --usage sign >&2
"$ts" key cert --self --label s -o "$work/s.crt"
"$ts" key cert --label r --issuer s -o "$work/r.crt"
"$ts" key export --label s -o "$work/s.pem"
"$ts" key export --label r -o "$work/r.pem"
"$ts" trust add --state-dir "$work/state-tmpl" bench-sender "$work/s.pem" >&2
export PKCS11_MODULE_PATH=$module
key="org.openssl.engine:pkcs11:pkcs11:token=$label;object=r;type=private;pin-value=1234-user"

log "input: $size random bytes"
head -c "$size" /dev/urandom >"$work/in"
cat "$work/in" >/dev/null

# Messages the open rows read, made once.
"$ts" seal --format cms --anonymous -r "$work/r.crt" -o "$work/t.cms" "$work/in"
"$ts" seal --format cms --sign-with s -r "$work/r.crt" -o "$work/ts.cms" "$work/in"
"$ts" seal --format cms --cms-compat --anonymous -r "$work/r.crt" -o "$work/tc.cms" "$work/in"
"$ts" seal --anonymous -r token:r -o "$work/e.tseal" "$work/in"
openssl cms -encrypt -binary -aes-256-gcm -recip "$work/r.crt" -keyopt rsa_padding_mode:oaep \
	-keyopt rsa_oaep_md:sha256 -outform DER -in "$work/in" -out "$work/o.cms"

o="--state-dir $work/state-open"
declare -A CMD
CMD[openssl-cms-encrypt]="openssl cms -encrypt -binary -aes-256-gcm -recip $work/r.crt -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -outform DER -in $work/in -out $work/x.cms"
CMD[openssl-cms-decrypt]="openssl cms -decrypt -binary -inform DER -inkey $key -recip $work/r.crt -in $work/o.cms -out $work/o.out"
CMD[cms-seal]="$ts seal --format cms --anonymous -r $work/r.crt -o $work/y.cms $work/in"
CMD[cms-open]="$ts open $o --allow-anonymous -o $work/t.out $work/t.cms"
CMD[cms-open-openssl-made]="$ts open $o --allow-anonymous -o $work/oo.out $work/o.cms"
CMD[cms-open-stdout]="$ts open $o --allow-anonymous --output - $work/t.cms"
CMD[cms-seal-signed]="$ts seal --format cms --sign-with s -r $work/r.crt -o $work/y.cms $work/in"
CMD[cms-open-signed]="$ts open $o -o $work/ts.out $work/ts.cms"
CMD[cms-seal-compat]="$ts seal --format cms --cms-compat --anonymous -r $work/r.crt -o $work/y.cms $work/in"
CMD[cms-open-compat]="$ts open $o --allow-anonymous --allow-unauthenticated -o $work/tc.out $work/tc.cms"
CMD[envelope-seal]="$ts seal --anonymous -r $work/r.pem -o $work/y.tseal $work/in"
CMD[envelope-open]="$ts open $o --allow-anonymous -o $work/e.out $work/e.tseal"
order=(openssl-cms-encrypt openssl-cms-decrypt cms-seal cms-open cms-open-openssl-made cms-open-stdout
	cms-seal-signed cms-open-signed cms-seal-compat cms-open-compat envelope-seal envelope-open)
outs="o.out t.out oo.out ts.out tc.out e.out stdout.out"

declare -A T R
failed=()
for ((i = 1; i <= runs; i++)); do
	log "round $i of $runs"
	for name in "${order[@]}"; do
		for f in $outs x.cms y.cms y.tseal; do rm -f "$work/$f"; done
		# Every open starts from the trusted sender and an empty ledger.
		rm -rf "$work/state-open"
		cp -a "$work/state-tmpl" "$work/state-open"
		sync
		s=$(date +%s%N)
		if ! /usr/bin/time -f %M -o "$work/rss" ${CMD[$name]} >"$work/stdout.out" 2>"$work/err"; then
			log "FAILED: $name: $(tail -n 3 "$work/err")"
			failed+=("$name")
			continue
		fi
		e=$(date +%s%N)
		T[$name]+="$(((e - s) / 1000000)) "
		R[$name]+="$(tail -n 1 "$work/rss") "
		for f in $outs; do
			[ -s "$work/$f" ] && ! cmp -s "$work/in" "$work/$f" && { log "FAILED: $name: $f differs from the input"; failed+=("$name"); }
		done
	done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
declare -A MS MBS RSS
for name in "${order[@]}"; do
	MS[$name]=$(echo "${T[$name]:-}" | median)
	RSS[$name]=$(echo "${R[$name]:-}" | median)
	MBS[$name]=$(awk -v b="$size" -v ms="${MS[$name]:-0}" 'BEGIN { if (ms > 0) printf "%.0f", b / 1e6 / (ms / 1000); else print "n/a" }')
done

echo
echo "## CMS: tokenseal --format cms vs openssl cms ($(awk -v b="$size" 'BEGIN { printf "%g MiB", b / 1048576 }'), median of $runs, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "RSA-3072 key on a SoftHSM2 token, its certificate made by \`key cert\`; openssl decrypts with it through the PKCS#11 engine."
echo
echo "| command | median ms | MB/s | peak RSS MiB |"
echo "|---|---|---|---|"
for name in "${order[@]}"; do
	printf '| %s | %s | %s | %s |\n' "$name" "${MS[$name]:-n/a}" "${MBS[$name]}" \
		"$(awk -v k="${RSS[$name]:-0}" 'BEGIN { printf "%.1f", k / 1024 }')"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.1f", b / a; else print "n/a" }'; }
verdict() { awk -v r="$1" 'BEGIN { print (r != "n/a" && r >= 4) ? "PASS" : "MISS" }'; }
mem() { awk -v a="${RSS[$1]:-0}" -v b="${RSS[$2]:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.1f vs %.1f MiB|%s", a / 1024, b / 1024, (a - b <= 2048) ? "PASS" : "MISS"; else print "n/a|MISS" }'; }
enc=$(ratio "${MS[cms-seal]:-0}" "${MS[openssl-cms-encrypt]:-0}")
dec=$(ratio "${MS[cms-open]:-0}" "${MS[openssl-cms-decrypt]:-0}")
IFS='|' read -r mseal vseal <<<"$(mem cms-seal envelope-seal)"
IFS='|' read -r mopen vopen <<<"$(mem cms-open envelope-open)"
echo
echo "| target (issue 15) | measured | goal | |"
echo "|---|---|---|---|"
echo "| cms seal throughput / openssl cms -encrypt | ${enc}x | ≥ 4x | $(verdict "$enc") |"
echo "| cms open throughput / openssl cms -decrypt | ${dec}x | ≥ 4x | $(verdict "$dec") |"
echo "| peak RSS, cms seal vs envelope seal | $mseal | ≤ envelope + 2 MiB | $vseal |"
echo "| peak RSS, cms open vs envelope open | $mopen | ≤ envelope + 2 MiB | $vopen |"
if [ ${#failed[@]} -gt 0 ]; then
	echo
	echo "Not measured (failed): ${failed[*]}"
	exit 1
fi
