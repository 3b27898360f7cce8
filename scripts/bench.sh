#!/usr/bin/env bash
# Benchmark tokenseal against the ceiling (cat), a plain Go AES-256-GCM
# stream (scripts/bench/gcmref), age, gpg and openssl cms, side by side in
# one run, and print one report with the targets of issue 5 marked PASS or
# MISS. Every ratio compares figures measured in this run on this machine;
# nothing here is a test, and the script exits 0 when a target is missed
# (it exits 1 only when a measurement could not be made).
#
#   scripts/bench.sh                      # or: make bench
#   BENCH_SIZE=256MiB scripts/bench.sh
#   BENCH_QUICK=1 scripts/bench.sh        # 64 MiB, fewer runs, 200-envelope batch
#
# It builds bin/tokenseal and the helpers in scripts/bench/, makes a
# throwaway SoftHSM2 token with its own SOFTHSM2_CONF (p256 and rsa-3072
# exchange keys, a p256 sign key), a temporary state directory, a
# temporary GNUPGHOME, age keys and an openssl key/certificate, all in one
# temporary directory that is removed at exit (BENCH_KEEP=1 keeps it,
# with the hyperfine JSON/CSV exports under results/). Missing tools are
# installed: SoftHSM2 through scripts/install-deps.sh; hyperfine, gnupg,
# time and openssl from apt (root, or sudo); age with `go install` of a
# pinned version into the temporary directory.
#
# Times are medians of hyperfine runs (after warm-up runs); MB/s is
# 10^6 bytes per second of the input size; peak RSS is GNU time's %M from
# one extra run of each command. Progress and hyperfine's output go to
# stderr, the report to stdout.
#
# Environment:
#   BENCH_SIZE        bulk input size (default 1GiB; 64MiB with BENCH_QUICK=1);
#                     suffixes K, M, G, KiB, MiB, GiB (all powers of 1024)
#   BENCH_QUICK=1     a quick pass: smaller input, fewer runs, smaller batch
#   BENCH_RUNS        timed runs per bulk command (default 5; 3 quick)
#   BENCH_WARMUP      warm-up runs per bulk command (default 1)
#   BENCH_SMALL_RUNS  timed runs per small command (default 30; 10 quick)
#   BENCH_BATCH       envelopes in the batch open (default 2000; 200 quick)
#   BENCH_CMS_MAX     largest input given to openssl cms, which holds the
#                     whole message in memory (about 2.3x its size); a
#                     prefix of the input is used beyond it (default 1GiB)
#   BENCH_TMPDIR      where the temporary directory goes (default $TMPDIR or
#                     /tmp); input and outputs share its file system
#   BENCH_KEEP=1      keep the temporary directory
#   AGE_VERSION       age version to install (default v1.3.2)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t_start=$(date +%s)

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# to_bytes 1GiB -> 1073741824 (K/M/G and KiB/MiB/GiB are all binary).
to_bytes() {
	local v=$1 n u
	n=${v%%[!0-9]*}
	u=${v#"$n"}
	[ -n "$n" ] || die "bad size $v"
	case "$u" in
	"" | B) echo "$n" ;;
	K | KiB | k | KB) echo $((n << 10)) ;;
	M | MiB | MB) echo $((n << 20)) ;;
	G | GiB | GB) echo $((n << 30)) ;;
	*) die "bad size suffix in $v" ;;
	esac
}

quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
	size=$(to_bytes "${BENCH_SIZE:-64MiB}")
	runs=${BENCH_RUNS:-3}
	small_runs=${BENCH_SMALL_RUNS:-10}
	batch_n=${BENCH_BATCH:-200}
	rate_n=2000
else
	size=$(to_bytes "${BENCH_SIZE:-1GiB}")
	runs=${BENCH_RUNS:-5}
	small_runs=${BENCH_SMALL_RUNS:-30}
	batch_n=${BENCH_BATCH:-2000}
	rate_n=10000
fi
warmup=${BENCH_WARMUP:-1}
cms_max=$(to_bytes "${BENCH_CMS_MAX:-1GiB}")
age_version=${AGE_VERSION:-v1.3.2}
mib() { awk -v b="$1" 'BEGIN { printf "%g MiB", b / 1048576 }'; }

# ---------------------------------------------------------------- tools
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
pkgs=()
command -v hyperfine >/dev/null 2>&1 || pkgs+=(hyperfine)
command -v gpg >/dev/null 2>&1 && command -v gpg-agent >/dev/null 2>&1 || pkgs+=(gnupg)
[ -x /usr/bin/time ] || pkgs+=(time)
command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
if [ ${#pkgs[@]} -gt 0 ]; then
	command -v apt-get >/dev/null 2>&1 || die "missing ${pkgs[*]} and no apt-get; install them by hand"
	log "installing ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update >&2
	$SUDO apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
fi
scripts/install-deps.sh >&2

module=""
for p in /usr/lib/softhsm/libsofthsm2.so \
	/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/local/lib/softhsm/libsofthsm2.so \
	/usr/lib64/pkcs11/libsofthsm2.so; do
	if [ -f "$p" ]; then module=$p; break; fi
done
[ -n "$module" ] || die "SoftHSM2 module not found after scripts/install-deps.sh"

# ---------------------------------------------------------------- work dir
base=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
work=$(mktemp -d "$base/tokenseal-bench.XXXXXX")
chmod 700 "$work"
cleanup() {
	if [ -d "$work/gnupg" ]; then GNUPGHOME="$work/gnupg" gpgconf --kill all >/dev/null 2>&1 || true; fi
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		log "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
res=$work/results bin=$work/bin
mkdir -p "$res" "$bin" "$work/data" "$work/keys" "$work/small" "$work/batch/in"
log "working in $work"

# Only this script's settings reach tokenseal.
for v in $(env | awk -F= '/^TOKENSEAL_/ { print $1 }'); do unset "$v"; done
unset XDG_STATE_HOME

log "building bin/tokenseal and scripts/bench helpers"
mkdir -p bin
go build -o bin/tokenseal ./cmd/tokenseal
go build -o "$bin/" ./scripts/bench/gcmref ./scripts/bench/p11oneshot ./scripts/bench/p11rate
ts=$root/bin/tokenseal

log "installing age $age_version into $bin"
if ! GOBIN=$bin go install "filippo.io/age/cmd/...@$age_version" >&2; then
	command -v age >/dev/null 2>&1 && command -v age-keygen >/dev/null 2>&1 ||
		die "go install filippo.io/age/cmd/...@$age_version failed and no age on PATH"
	log "go install failed: using $(command -v age)"
	ln -s "$(command -v age)" "$bin/age"
	ln -s "$(command -v age-keygen)" "$bin/age-keygen"
fi

# ---------------------------------------------------------------- token
log "making a throwaway SoftHSM2 token"
mkdir -p "$work/softhsm/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
	"$work/softhsm/tokens" >"$work/softhsm/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
label=bench-$$
softhsm2-util --init-token --free --label "$label" --so-pin 5678-so --pin 1234-user --module "$module" >/dev/null
printf '1234-user\n' >"$work/softhsm/user.pin"
export TOKENSEAL_MODULE=$module TOKENSEAL_TOKEN=$label TOKENSEAL_PIN_FILE=$work/softhsm/user.pin
"$ts" key generate --label bench-ec --type p256 --usage exchange >&2
"$ts" key generate --label bench-rsa --type rsa-3072 --usage exchange >&2
"$ts" key generate --label bench-sign --type p256 --usage sign >&2
for k in ec rsa sign; do "$ts" key export --label "bench-$k" -o "$work/keys/$k.pem"; done
# state-tmpl: the sender trusted, nothing in the ledger; every open gets a
# fresh copy. state-seal: the sender's serial counters.
"$ts" trust add --state-dir "$work/state-tmpl" bench-sender "$work/keys/sign.pem" >&2
mkdir -p -m 700 "$work/state-seal"
ec=$work/keys/ec.pem

# fresh_state DIR: a prepare step giving DIR a fresh copy of state-tmpl.
cat >"$work/fresh-state" <<EOF
#!/bin/sh
set -e
rm -rf "\$1"
cp -a '$work/state-tmpl' "\$1"
EOF
chmod +x "$work/fresh-state"

# ---------------------------------------------------------------- peers
log "making age, gpg and openssl keys"
"$bin/age-keygen" -o "$work/keys/age.key" 2>/dev/null
age_recipient=$("$bin/age-keygen" -y "$work/keys/age.key")
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg_uid=bench@tokenseal.invalid
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
	--quick-gen-key "tokenseal bench <$gpg_uid>" rsa3072 cert,sign never 2>/dev/null
gpg_fpr=$(gpg --batch --with-colons --list-keys "$gpg_uid" | awk -F: '/^fpr/ { print $10; exit }')
gpg --batch --quiet --pinentry-mode loopback --passphrase '' --quick-add-key "$gpg_fpr" rsa3072 encr never 2>/dev/null
openssl req -x509 -newkey rsa:3072 -nodes -keyout "$work/keys/cms.key" -out "$work/keys/cms.crt" \
	-subj /CN=tokenseal-bench -days 2 2>/dev/null

# ---------------------------------------------------------------- data
in=$work/data/in
log "generating $(mib "$size") of random data"
head -c "$size" /dev/urandom >"$in"
cms_size=$size cms_in=$in
if [ "$size" -gt "$cms_max" ]; then
	cms_size=$cms_max cms_in=$work/data/in-cms
	head -c "$cms_size" "$in" >"$cms_in"
fi
head -c 1024 /dev/urandom >"$work/small/1k"
: >"$work/small/empty"
cat "$in" >/dev/null # into the page cache

# ---------------------------------------------------------------- helpers
declare -A MED RSS
errors=()

# hf NAME RUNS WARMUP PREPARE COMMAND [none]: hyperfine one command, keep
# its median in MED[NAME]. With "none" the command runs without a shell
# (hyperfine -N; its stdout goes to /dev/null either way).
hf() {
	local name=$1 n=$2 w=$3 prep=$4 cmd=$5 shell=${6:-}
	local args=(--runs "$n" --warmup "$w" --style basic --command-name "$name"
		--export-json "$res/$name.json" --export-csv "$res/$name.csv")
	[ -n "$prep" ] && args+=(--prepare "$prep")
	[ "$shell" = none ] && args+=(-N)
	log "timing $name"
	if hyperfine "${args[@]}" "$cmd" >&2; then
		MED[$name]=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "median") c = i }
			NR == 2 { print $c }' "$res/$name.csv")
	else
		log "FAILED: $name"
		errors+=("$name")
	fi
}

# rss NAME COMMAND...: one run under GNU time, peak RSS (KiB) in RSS[NAME].
# Redirections on the call apply to the command.
rss() {
	local name=$1
	shift
	if /usr/bin/time -f %M -o "$res/rss-$name" "$@"; then
		RSS[$name]=$(tail -n 1 "$res/rss-$name")
	else
		log "FAILED: peak RSS of $name"
		errors+=("rss-$name")
	fi
}

# same NAME A B: the round trip gave back the input.
same() {
	if ! cmp -s "$2" "$3"; then
		log "FAILED: $1 did not give back its input"
		errors+=("$1-roundtrip")
	fi
}

q() { printf '%q' "$1"; }
enc=$work/data/enc dec=$work/data/dec
penc="rm -f $(q "$enc"); sync"
pdec="rm -f $(q "$dec"); sync"
qin=$(q "$in") qenc=$(q "$enc") qdec=$(q "$dec")

# ---------------------------------------------------------------- bulk
log "bulk: $(mib "$size"), $runs runs after $warmup warm-up"

hf cat "$runs" "$warmup" "$penc" "cat $qin > $qenc"
rss cat cat "$in" >"$enc"
rm -f "$enc"

hf gcmref-enc "$runs" "$warmup" "$penc" "$(q "$bin/gcmref") $qin $qenc"
hf gcmref-dec "$runs" "$warmup" "$pdec" "$(q "$bin/gcmref") -d $qenc $qdec"
same gcmref "$in" "$dec"
rss gcmref-enc "$bin/gcmref" "$in" "$enc"
rss gcmref-dec "$bin/gcmref" -d "$enc" "$dec"
rm -f "$enc" "$dec"

hf age-enc "$runs" "$warmup" "$penc" "$(q "$bin/age") -r $age_recipient -o $qenc $qin"
hf age-dec "$runs" "$warmup" "$pdec" "$(q "$bin/age") -d -i $(q "$work/keys/age.key") -o $qdec $qenc"
same age "$in" "$dec"
rss age-enc "$bin/age" -r "$age_recipient" -o "$enc" "$in"
rss age-dec "$bin/age" -d -i "$work/keys/age.key" -o "$dec" "$enc"
rm -f "$enc" "$dec"

gpg_enc=(gpg --batch --yes --quiet --compress-algo none --cipher-algo AES256 --trust-model always -r "$gpg_uid")
gpg_dec=(gpg --batch --yes --quiet)
hf gpg-enc "$runs" "$warmup" "$penc" "${gpg_enc[*]} -o $qenc -e $qin"
hf gpg-dec "$runs" "$warmup" "$pdec" "${gpg_dec[*]} -o $qdec -d $qenc"
same gpg "$in" "$dec"
rss gpg-enc "${gpg_enc[@]}" -o "$enc" -e "$in"
rss gpg-dec "${gpg_dec[@]}" -o "$dec" -d "$enc"
rm -f "$enc" "$dec"

cms_enc=(openssl cms -encrypt -binary -aes-256-gcm -recip "$work/keys/cms.crt" -keyopt rsa_padding_mode:oaep -outform DER)
cms_dec=(openssl cms -decrypt -binary -inform DER -inkey "$work/keys/cms.key" -recip "$work/keys/cms.crt")
hf cms-enc "$runs" "$warmup" "$penc" "$(printf '%q ' "${cms_enc[@]}") -in $(q "$cms_in") -out $qenc"
hf cms-dec "$runs" "$warmup" "$pdec" "$(printf '%q ' "${cms_dec[@]}") -in $qenc -out $qdec"
same cms "$cms_in" "$dec"
rss cms-enc "${cms_enc[@]}" -in "$cms_in" -out "$enc"
rss cms-dec "${cms_dec[@]}" -in "$enc" -out "$dec"
rm -f "$enc" "$dec"

seal=("$ts" seal --sign-with bench-sign --state-dir "$work/state-seal" -r "$ec")
sealq="$(printf '%q ' "${seal[@]}")"
so=$work/state-open
open=("$ts" open --state-dir "$so" --force)
openq="$(printf '%q ' "${open[@]}")"
hf tokenseal-seal "$runs" "$warmup" "$penc" "$sealq -o $qenc $qin"
hf tokenseal-open "$runs" "$warmup" "$pdec; $(q "$work/fresh-state") $(q "$so")" "$openq -o $qdec $qenc"
same tokenseal "$in" "$dec"
rss tokenseal-seal "${seal[@]}" -o "$enc.2" "$in"
"$work/fresh-state" "$so"
rss tokenseal-open "${open[@]}" -o "$dec" "$enc"
rm -f "$dec" "$enc.2"

# The same without a sender signature: no SHA-256 over the ciphertext, so
# this is the cost of the envelope itself (AES-GCM STREAM, I/O, pipeline).
aseal=("$ts" seal --anonymous -r "$ec")
aopen=("$ts" open --allow-anonymous --state-dir "$so" --force)
qanon=$(q "$enc.anon")
hf tokenseal-seal-anon "$runs" "$warmup" "rm -f $qanon" "$(printf '%q ' "${aseal[@]}") -o $qanon $qin"
hf tokenseal-open-anon "$runs" "$warmup" "$pdec" "$(printf '%q ' "${aopen[@]}") -o $qdec $qanon"
same tokenseal-anon "$in" "$dec"
rm -f "$dec" "$enc.anon"
rss tokenseal-seal-stdio "${seal[@]}" <"$in" >"$enc.2"
rm -f "$enc.2"
"$work/fresh-state" "$so"
rss tokenseal-open-stdio "${open[@]}" <"$enc" >"$dec"
same tokenseal-stdio "$in" "$dec"
rm -f "$enc" "$dec"
rss tokenseal-seal-0B "${seal[@]}" -o "$work/small/empty.tseal" "$work/small/empty"
"$work/fresh-state" "$so"
rss tokenseal-open-0B "${open[@]}" -o "$work/small/empty.out" "$work/small/empty.tseal"
same tokenseal-0B "$work/small/empty" "$work/small/empty.out"

# ---------------------------------------------------------------- one-shot
log "one-shot: open of a 1 KiB envelope vs the bare PKCS#11 steps, $small_runs runs"
"${seal[@]}" -o "$work/small/1k.tseal" "$work/small/1k"
hf oneshot-open "$small_runs" 3 "$(q "$work/fresh-state") $(q "$so")" \
	"$openq $(q "$work/small/1k.tseal")" none
hf oneshot-p11 "$small_runs" 3 "" "$(q "$bin/p11oneshot") -key bench-ec" none

# ---------------------------------------------------------------- seal side
log "seal side: 1 vs 100 recipients, signed vs anonymous"
mkdir -p "$work/rcpt"
for i in $(seq -w 1 100); do
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null |
		openssl pkey -pubout -out "$work/rcpt/r$i.pem"
	echo "r$i.pem" >>"$work/rcpt/all.txt"
done
echo r001.pem >"$work/rcpt/one.txt"
anon=("$ts" seal --anonymous --force -o "$work/small/out.tseal")
anonq="$(printf '%q ' "${anon[@]}")"
hf seal-r1 "$small_runs" 3 "" "$anonq -R $(q "$work/rcpt/one.txt") $(q "$work/small/1k")" none
hf seal-r100 "$small_runs" 3 "" "$anonq -R $(q "$work/rcpt/all.txt") $(q "$work/small/1k")" none
hf seal-signed "$small_runs" 3 "" "$sealq --force -o $(q "$work/small/out.tseal") $(q "$work/small/1k")" none
hf seal-anon "$small_runs" 3 "" "$anonq -r $(q "$ec") $(q "$work/small/1k")" none

log "public-key work per recipient: go test -bench BenchmarkSealRecipients ./envelope/"
wrap_ns=""
if go test -run '^$' -bench '^BenchmarkSealRecipients$' -benchtime 2s ./envelope/ >"$res/sealrecipients.txt" 2>&1; then
	# ns/op is for a seal to 100 recipients.
	wrap_ns=$(awk '/^BenchmarkSealRecipients/ { for (i = 1; i < NF; i++) if ($(i + 1) == "ns/op") { print $i / 100; exit } }' "$res/sealrecipients.txt")
fi
if [ -z "$wrap_ns" ]; then
	log "FAILED: BenchmarkSealRecipients"
	errors+=(BenchmarkSealRecipients)
	cat "$res/sealrecipients.txt" >&2
fi

# ---------------------------------------------------------------- batch
log "batch: sealing $batch_n signed 1 KiB envelopes"
for i in $(seq -w 1 "$batch_n"); do
	"${seal[@]}" -o "$work/batch/in/m$i.tseal" "$work/small/1k"
done
log "token raw rate (scripts/bench/p11rate, median of 3)"
for i in 1 2 3; do
	"$bin/p11rate" -key bench-ec -rsa-key bench-rsa -n "$rate_n" -sessions 1,2 | tee -a "$res/p11rate.txt" >&2
done
# rate_of NAME SESSIONS: the median rate of the three p11rate runs.
rate_of() {
	awk -v n="$1" -v s="sessions=$2" '$1 == n && $2 == s { for (i = 3; i <= NF; i++) if (sub("^rate=", "", $i)) print $i }' "$res/p11rate.txt" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
raw_ec1=$(rate_of ecdh-p256 1) raw_ec2=$(rate_of ecdh-p256 2)
raw_rsa1=$(rate_of rsa3072-oaep-unwrap 1) raw_rsa2=$(rate_of rsa3072-oaep-unwrap 2)
# The raw rate is the best session count's.
raw_ec=$(awk -v a="$raw_ec1" -v b="$raw_ec2" 'BEGIN { if (a != "" && b != "") printf "%.0f", (a > b ? a : b) }')
[ -n "$raw_ec" ] || errors+=(p11rate)
bo=$work/batch/out sb=$work/state-batch
cat >"$work/prep-batch" <<EOF
#!/bin/sh
set -e
rm -rf '$bo'
mkdir '$bo'
'$work/fresh-state' '$sb'
EOF
chmod +x "$work/prep-batch"
hf batch-open "$runs" "$warmup" "$(q "$work/prep-batch")" \
	"$(q "$ts") open --state-dir $(q "$sb") -o $(q "$bo") $(q "$work/batch/in")/*.tseal"
got=$(find "$bo" -type f | wc -l)
if [ "$got" -ne "$batch_n" ]; then
	log "FAILED: batch open wrote $got of $batch_n files"
	errors+=(batch-count)
fi

# ---------------------------------------------------------------- shared ledger
# Issue 14: the same batch open with the ledger in PostgreSQL on loopback
# (a server of its own, scripts/bench/pgserver, fsync on), against the
# SQLite run above; then 8 openers at once, each with its share of the
# envelopes (one sender stream: every batch commit takes its row lock).
log "shared ledger: starting PostgreSQL"
go build -o "$bin/" ./scripts/bench/pgserver
coproc PGSERVER { "$bin/pgserver"; }
read -r pg_url pg_pass <&"${PGSERVER[0]}" || true
if [ -n "${pg_url:-}" ]; then
	export PGPASSFILE=$pg_pass
	pgenv="env TOKENSEAL_STATE_URL=$(q "$pg_url") PGPASSFILE=$(q "$pg_pass")"
	TOKENSEAL_STATE_URL=$pg_url "$ts" trust add bench-sender "$work/keys/sign.pem" >&2
	printf '#!/bin/sh\nset -e\nrm -rf %s\nmkdir %s\n%s -reset %s\n' "$(q "$bo")" "$(q "$bo")" "$(q "$bin/pgserver")" "$(q "$pg_url")" >"$work/prep-batch-pg"
	chmod +x "$work/prep-batch-pg"
	hf batch-open-pg "$runs" "$warmup" "$(q "$work/prep-batch-pg")" \
		"$pgenv $(q "$ts") open -o $(q "$bo") $(q "$work/batch/in")/*.tseal"
	got=$(find "$bo" -type f | wc -l)
	[ "$got" -eq "$batch_n" ] || { log "FAILED: PostgreSQL batch open wrote $got of $batch_n files"; errors+=(batch-count-pg); }
	# Eight openers at once, envelope i to opener i mod 8, each on its own
	# copy of the token (SoftHSM2 rewrites its token file at every login:
	# logins at once on one copy can fail). They drift apart on the one
	# sender stream by more than the default window of 1024 serials, which
	# would refuse the laggards' envelopes as too old: --window 8192.
	for w in 0 1 2 3 4 5 6 7; do
		mkdir -p "$work/softhsm-$w"
		cp -a "$work/softhsm/tokens" "$work/softhsm-$w/tokens"
		printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
			"$work/softhsm-$w/tokens" >"$work/softhsm-$w/softhsm2.conf"
	done
	{
		printf '#!/bin/bash\ncd %s\nfiles=(*.tseal)\n' "$(q "$work/batch/in")"
		printf 'for w in 0 1 2 3 4 5 6 7; do\n\tpart=()\n'
		printf '\tfor ((i = w; i < ${#files[@]}; i += 8)); do part+=("${files[i]}"); done\n'
		printf '\tSOFTHSM2_CONF=%s/softhsm-$w/softhsm2.conf %s %s open --window 8192 -o %s "${part[@]}" &\ndone\n' "$(q "$work")" "$pgenv" "$(q "$ts")" "$(q "$bo")"
		printf 'fail=0\nfor w in 0 1 2 3 4 5 6 7; do wait -n || fail=1; done\nexit $fail\n'
	} >"$work/open-8"
	chmod +x "$work/open-8"
	hf batch-open-pg-8 "$runs" "$warmup" "$(q "$work/prep-batch-pg")" "$(q "$work/open-8")"
	got=$(find "$bo" -type f | wc -l)
	[ "$got" -eq "$batch_n" ] || { log "FAILED: 8 openers wrote $got of $batch_n files"; errors+=(batch-count-pg-8); }
	unset PGPASSFILE
else
	log "FAILED: no PostgreSQL server"
	errors+=(pgserver)
fi
exec {PGSERVER[1]}>&- # the server stops when its input closes

# ---------------------------------------------------------------- report
# f EXPR: evaluate with awk, empty when an operand is missing.
f() {
	local fmt=$1 expr=$2
	shift 2
	local v
	for v in "$@"; do [ -n "$v" ] || return 0; done
	awk "BEGIN { printf \"$fmt\", $expr }"
}
mbs() { f '%.0f' "$2 / 1e6 / $1" "$1" "$2"; }
kib() { f '%.1f MiB' "$1 / 1024" "$1"; }
or_na() { if [ -n "$1" ]; then printf '%s' "$1"; else printf 'n/a'; fi; }
# row TOOL ENC DEC RSS: "-" for a figure that is not measured by design.
# verdict VALUE OP TARGET
verdict() {
	[ -n "$1" ] || { printf 'n/a'; return; }
	if awk -v v="$1" -v t="$3" "BEGIN { exit !(v $2 t) }"; then printf 'PASS'; else printf 'MISS'; fi
}
row() {
	local e=$2 d=$3
	[ "$e" = - ] || e=$(or_na "$e")
	[ "$d" = - ] || d=$(or_na "$d")
	printf '| %s | %s | %s | %s |\n' "$1" "$e" "$d" "$4"
}
rssboth() { printf '%s / %s' "$(or_na "$(kib "${RSS[$1]:-}")")" "$(or_na "$(kib "${RSS[$2]:-}")")"; }

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
[ -n "$cpu" ] || cpu=$(lscpu 2>/dev/null | awk -F': *' '/Model name/ { print $2; exit }' || true)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit + uncommitted changes"
elapsed=$(($(date +%s) - t_start))

echo
echo "## tokenseal benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); run took ${elapsed}s"
echo "- machine: $(nproc) cores, ${cpu:-unknown CPU}, $(uname -sr), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
echo "- tokenseal at commit $commit; $(go version | cut -d' ' -f3); SoftHSM2 $(softhsm2-util --version)"
echo "- peers: age $("$bin/age" --version), $(gpg --version | head -n 1), $(openssl version | cut -d' ' -f1-2), $(hyperfine --version)"
echo "- bulk input: $(mib "$size") of random data in the page cache, outputs on the same file system ($(df -T "$work" | awk 'NR == 2 { print $2 }')); medians of $runs runs after $warmup warm-up; small commands: medians of $small_runs runs"
if [ "$cms_size" != "$size" ]; then
	echo "- openssl cms holds the whole message in memory: measured on the first $(mib "$cms_size") only"
fi
echo
echo "| tool | encrypt MB/s | decrypt MB/s | peak RSS enc / dec |"
echo "|---|---|---|---|"
row "cat IN > OUT (ceiling)" "$(mbs "${MED[cat]:-}" "$size")" - "$(or_na "$(kib "${RSS[cat]:-}")")"
row "plain Go AES-256-GCM, 64 KiB chunks (gcmref)" "$(mbs "${MED[gcmref-enc]:-}" "$size")" "$(mbs "${MED[gcmref-dec]:-}" "$size")" "$(rssboth gcmref-enc gcmref-dec)"
row "age $("$bin/age" --version) (X25519)" "$(mbs "${MED[age-enc]:-}" "$size")" "$(mbs "${MED[age-dec]:-}" "$size")" "$(rssboth age-enc age-dec)"
row "gpg (RSA-3072, AES-256, no compression)" "$(mbs "${MED[gpg-enc]:-}" "$size")" "$(mbs "${MED[gpg-dec]:-}" "$size")" "$(rssboth gpg-enc gpg-dec)"
row "openssl cms (AES-256-GCM, RSA-OAEP) on $(mib "$cms_size")" "$(mbs "${MED[cms-enc]:-}" "$cms_size")" "$(mbs "${MED[cms-dec]:-}" "$cms_size")" "$(rssboth cms-enc cms-dec)"
row "**tokenseal** seal (signed, p256) / open" "$(mbs "${MED[tokenseal-seal]:-}" "$size")" "$(mbs "${MED[tokenseal-open]:-}" "$size")" "$(rssboth tokenseal-seal tokenseal-open)"
row "tokenseal --anonymous seal / open (no signature)" "$(mbs "${MED[tokenseal-seal-anon]:-}" "$size")" "$(mbs "${MED[tokenseal-open-anon]:-}" "$size")" -
row "tokenseal, stdin → stdout" - - "$(rssboth tokenseal-seal-stdio tokenseal-open-stdio)"
row "tokenseal, 0-byte input" - - "$(rssboth tokenseal-seal-0B tokenseal-open-0B)"

ms() { f '%.1f ms' "$1 * 1000" "$1"; }
seal_cat=$(f '%.2f' "${MED[tokenseal-seal]:-} / ${MED[cat]:-}" "${MED[tokenseal-seal]:-}" "${MED[cat]:-}")
open_cat=$(f '%.2f' "${MED[tokenseal-open]:-} / ${MED[cat]:-}" "${MED[tokenseal-open]:-}" "${MED[cat]:-}")
seal_age=$(f '%.2f' "${MED[age-enc]:-} / ${MED[tokenseal-seal]:-}" "${MED[age-enc]:-}" "${MED[tokenseal-seal]:-}")
open_age=$(f '%.2f' "${MED[age-dec]:-} / ${MED[tokenseal-open]:-}" "${MED[age-dec]:-}" "${MED[tokenseal-open]:-}")
peak=""
peak_of=""
for k in tokenseal-seal tokenseal-open tokenseal-seal-stdio tokenseal-open-stdio tokenseal-seal-0B tokenseal-open-0B; do
	v=${RSS[$k]:-}
	[ -n "$v" ] || continue
	if [ -z "$peak" ] || [ "$v" -gt "$peak" ]; then peak=$v peak_of=$k; fi
done
peak_mib=$(f '%.1f' "$peak / 1024" "$peak")
oneshot=$(f '%.2f' "${MED[oneshot-open]:-} / ${MED[oneshot-p11]:-}" "${MED[oneshot-open]:-}" "${MED[oneshot-p11]:-}")
env_rate=$(f '%.0f' "$batch_n / ${MED[batch-open]:-}" "${MED[batch-open]:-}")
batch_pct=$(f '%.0f' "100 * $env_rate / $raw_ec" "$env_rate" "$raw_ec")
over=$(f '%.6f' "${MED[seal-r100]:-} - ${MED[seal-r1]:-}" "${MED[seal-r100]:-}" "${MED[seal-r1]:-}")
pkwork=$(f '%.6f' "99 * $wrap_ns / 1e9" "$wrap_ns")
over_ratio=$(f '%.2f' "(${MED[seal-r100]:-} - ${MED[seal-r1]:-}) / $pkwork" "${MED[seal-r100]:-}" "${MED[seal-r1]:-}" "$pkwork")
signed=$(f '%.2f' "${MED[seal-signed]:-} / ${MED[seal-anon]:-}" "${MED[seal-signed]:-}" "${MED[seal-anon]:-}")

echo
echo "| target (issue 5) | measured | goal | |"
echo "|---|---|---|---|"
echo "| seal time / cat time, $(mib "$size") | $(or_na "$seal_cat") ($(or_na "$(ms "${MED[tokenseal-seal]:-}")") vs $(or_na "$(ms "${MED[cat]:-}")")) | ≤ 1.15 | $(verdict "$seal_cat" '<=' 1.15) |"
echo "| open time / cat time, $(mib "$size") | $(or_na "$open_cat") ($(or_na "$(ms "${MED[tokenseal-open]:-}")") vs $(or_na "$(ms "${MED[cat]:-}")")) | ≤ 1.15 | $(verdict "$open_cat" '<=' 1.15) |"
echo "| seal throughput / age encrypt | $(or_na "$seal_age") | ≥ 2 | $(verdict "$seal_age" '>=' 2) |"
echo "| open throughput / age decrypt | $(or_na "$open_age") | ≥ 2 | $(verdict "$open_age" '>=' 2) |"
echo "| peak RSS, any tokenseal run above | $(or_na "$peak_mib") MiB (${peak_of:-n/a}) | ≤ 16 MiB | $(verdict "$peak_mib" '<=' 16) |"
echo "| one-shot open of 1 KiB / bare PKCS#11 program | $(or_na "$oneshot") ($(or_na "$(ms "${MED[oneshot-open]:-}")") vs $(or_na "$(ms "${MED[oneshot-p11]:-}")")) | ≤ 1.5 | $(verdict "$oneshot" '<=' 1.5) |"
echo "| batch open of $batch_n envelopes / token raw ECDH rate | $(or_na "$batch_pct")% ($(or_na "$env_rate")/s vs $(or_na "$raw_ec")/s) | ≥ 85% | $(verdict "$batch_pct" '>=' 85) |"
echo "| 100-recipient seal: (t100 − t1) / (99 × one wrap) | $(or_na "$over_ratio") ($(or_na "$(ms "$over")") vs $(or_na "$(ms "$pkwork")")) | ≤ 1 | $(verdict "$over_ratio" '<=' 1) |"
echo "| signed / anonymous seal of 1 KiB | $(or_na "$signed") ($(or_na "$(ms "${MED[seal-signed]:-}")") vs $(or_na "$(ms "${MED[seal-anon]:-}")")) | ≤ 1.5 | $(verdict "$signed" '<=' 1.5) |"
pg_ratio=$(f '%.2f' "${MED[batch-open-pg]:-} / ${MED[batch-open]:-}" "${MED[batch-open-pg]:-}" "${MED[batch-open]:-}")
pg8_rate=$(f '%.0f' "$batch_n / ${MED[batch-open-pg-8]:-}" "${MED[batch-open-pg-8]:-}")
echo "| batch open of $batch_n, PostgreSQL ledger / SQLite ledger (issue 14) | $(or_na "$pg_ratio") ($(or_na "$(ms "${MED[batch-open-pg]:-}")") vs $(or_na "$(ms "${MED[batch-open]:-}")")) | ≤ 1.3 | $(verdict "$pg_ratio" '<=' 1.3) |"
echo "| accepted envelopes/s, 8 openers on one PostgreSQL ledger (issue 14) | $(or_na "$pg8_rate")/s ($batch_n in $(or_na "$(ms "${MED[batch-open-pg-8]:-}")")) | measured | |"
echo
r0() { or_na "$(f '%.0f' "$1" "$1")"; }
echo "Token raw rates (scripts/bench/p11rate: one process, one login, one session per goroutine; median of 3): ECDH-P-256 derive $(r0 "$raw_ec1")/s on 1 session, $(r0 "$raw_ec2")/s on 2; RSA-3072 OAEP unwrap $(r0 "$raw_rsa1")/s on 1, $(r0 "$raw_rsa2")/s on 2."
echo "One recipient's wrap (BenchmarkSealRecipients / 100): $(or_na "$(f '%.1f µs' "$wrap_ns / 1000" "$wrap_ns")"). The 100-recipient seals are --anonymous (no token) with -R files of openssl-made P-256 keys."

if [ ${#errors[@]} -gt 0 ]; then
	echo
	echo "Not measured (failed): ${errors[*]}"
	exit 1
fi
