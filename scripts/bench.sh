#!/usr/bin/env bash
# Benchmark tokenseal beside cat, dd, a plain Go AES-256-GCM stream
# (scripts/bench/gcmref), age, gpg and openssl cms, side by side in one
# run, and print one report with the targets of issue 13 marked PASS or
# MISS. Every ratio compares figures measured in this run on this machine;
# nothing here is a test, and the script exits 0 when a target is missed
# (it exits 1 only when a measurement could not be made).
#
#   scripts/bench.sh                      # or: make bench
#   BENCH_SIZE=256MiB scripts/bench.sh
#   BENCH_QUICK=1 scripts/bench.sh        # 64 MiB, fewer runs, 200-envelope batch, 256 MiB RSS runs
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
# one extra run of each command. The memory section runs signed seal and
# open (the token's module loaded) on 1 KiB and on BENCH_RSS_SIZE, from
# and to files and through pipes, next to the bare PKCS#11 program. The
# bound section measures what one core spends per byte on AES-GCM and
# SHA-256 (scripts/bench/bytecost) and on reading and writing the page
# cache (dd), and works out how fast a signed envelope can be next to an
# anonymous one on this many cores. Progress and hyperfine's output go to
# stderr, the report to stdout.
#
# Environment:
#   BENCH_SIZE        bulk input size (default 1GiB; 64MiB with BENCH_QUICK=1);
#                     suffixes K, M, G, KiB, MiB, GiB (all powers of 1024)
#   BENCH_QUICK=1     a quick pass: smaller inputs, fewer runs, smaller batch
#   BENCH_RUNS        timed runs per bulk command (default 5; 3 quick)
#   BENCH_WARMUP      warm-up runs per bulk command (default 1)
#   BENCH_SMALL_RUNS  timed runs per small command (default 30; 10 quick)
#   BENCH_BATCH       envelopes in the batch open (default 2000; 200 quick)
#   BENCH_RSS_SIZE    the large input of the memory section (default 10GiB;
#                     256MiB quick). Pipes stream it from /dev/zero; the
#                     file runs need twice it on disk (and the signed open
#                     through a pipe spools it once) and use less, said in
#                     the report, when the disk is short
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
	rss_size=$(to_bytes "${BENCH_RSS_SIZE:-256MiB}")
else
	size=$(to_bytes "${BENCH_SIZE:-1GiB}")
	runs=${BENCH_RUNS:-5}
	small_runs=${BENCH_SMALL_RUNS:-30}
	batch_n=${BENCH_BATCH:-2000}
	rate_n=10000
	rss_size=$(to_bytes "${BENCH_RSS_SIZE:-10GiB}")
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
go build -o "$bin/" ./scripts/bench/gcmref ./scripts/bench/p11oneshot ./scripts/bench/p11rate ./scripts/bench/writefloor ./scripts/bench/bytecost
# settle FILE...: rewrite each file by copying it, as an install does.
# The Go linker writes its output through a shared mapping, and a
# program run straight from `go build` shows up to 6 MiB more RSS than
# the same bytes copied to a new file (tokenseal --version: 17.7 MiB
# against 11.8 MiB on Linux 6.18 and ext4; the small p11oneshot: 3.9 and
# 4.1), apparently because its pages sit in the page cache as large
# folios, which the kernel maps whole. Every program is measured as
# installed, that is, copied.
settle() {
	local f
	for f in "$@"; do
		cat "$f" >"$f.settle" && chmod 755 "$f.settle" && mv -f "$f.settle" "$f"
	done
}
cp bin/tokenseal "$bin/tokenseal"
settle "$bin/tokenseal" "$bin"/gcmref "$bin"/p11oneshot "$bin"/p11rate "$bin"/writefloor "$bin"/bytecost
ts=$bin/tokenseal

log "installing age $age_version into $bin"
if ! GOBIN=$bin go install "filippo.io/age/cmd/...@$age_version" >&2; then
	command -v age >/dev/null 2>&1 && command -v age-keygen >/dev/null 2>&1 ||
		die "go install filippo.io/age/cmd/...@$age_version failed and no age on PATH"
	log "go install failed: using $(command -v age)"
	ln -s "$(command -v age)" "$bin/age"
	ln -s "$(command -v age-keygen)" "$bin/age-keygen"
else
	settle "$bin/age" "$bin/age-keygen"
fi

# ---------------------------------------------------------------- token
log "making a throwaway SoftHSM2 token"
mkdir -p "$work/softhsm/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
	"$work/softhsm/tokens" >"$work/softhsm/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
label=bench-$$
softhsm2-util --init-token --free --label "$label" --so-pin 5678-so --pin 1234-user --module "$module" >/dev/null
(umask 077 && printf '1234-user\n' >"$work/softhsm/user.pin")
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

# cat (coreutils >= 9) copies inside the kernel with copy_file_range and
# never touches the bytes: shown for information. dd bs=1M copies through
# user space, read and write, as any program that transforms data must.
hf cat "$runs" "$warmup" "$penc" "cat $qin > $qenc"
rss cat cat "$in" >"$enc"
rm -f "$enc"
hf dd "$runs" "$warmup" "$penc" "dd if=$qin of=$qenc bs=1M status=none"
rss dd dd if="$in" of="$enc" bs=1M status=none
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
rm -f "$dec" "$enc.anon" "$enc"

# ---------------------------------------------------------------- bound
# What one core spends per byte: AES-GCM and SHA-256 (bytecost, the
# thread's CPU time), reading the page cache (dd to /dev/null) and
# writing it (dd copy minus read), each the best of three.
log "per-byte costs: scripts/bench/bytecost and dd"
"$bin/bytecost" >"$res/bytecost.txt" || errors+=(bytecost)
cost_of() { awk -v n="$1" '$1 == n { sub("ns/byte=", "", $2); print $2 }' "$res/bytecost.txt"; }
c_seal=$(cost_of gcm-seal) c_open=$(cost_of gcm-open) c_sha=$(cost_of sha256)
# cpu_ns_per_byte CMD...: the best user+system time of three runs, per
# byte of the bulk input.
cpu_ns_per_byte() {
	local best="" t
	for _ in 1 2 3; do
		rm -f "$enc"
		/usr/bin/time -f '%U %S' -o "$res/cpu.t" "$@" || return 0
		t=$(awk '{ print $1 + $2 }' "$res/cpu.t")
		if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$t; fi
	done
	rm -f "$enc"
	awk -v t="$best" -v n="$size" 'BEGIN { printf "%.3f", t * 1e9 / n }'
}
c_read=$(cpu_ns_per_byte dd if="$in" of=/dev/null bs=1M status=none)
c_copy=$(cpu_ns_per_byte dd if="$in" of="$enc" bs=1M status=none)
c_write=$(awk -v c="$c_copy" -v r="$c_read" 'BEGIN { if (c != "" && r != "") printf "%.3f", (c > r ? c - r : 0) }')
cores=$(nproc)

# ---------------------------------------------------------------- memory
# Peak RSS of signed seal and open (the module loaded) on 1 KiB and on
# rss_size, from and to files and through pipes, and of the bare PKCS#11
# program. A file run needs the envelope and the plaintext on disk at
# once, the pipe open spools the envelope once ($TMPDIR = the work dir).
avail=$(df -B1 --output=avail "$work" | tail -n 1)
rss_file=$rss_size
if [ "$avail" -lt $((2 * rss_size + (1 << 30))) ]; then
	rss_file=$(((avail - (1 << 30)) / 2 / (1 << 30) * (1 << 30)))
	[ "$rss_file" -ge $((1 << 30)) ] || rss_file=$((256 << 20))
fi
rss_pipe=$rss_size
if [ "$avail" -lt $((rss_size + (1 << 30))) ]; then rss_pipe=$rss_file; fi
log "memory: 1 KiB and $(mib "$rss_file") files, 1 KiB and $(mib "$rss_pipe") pipes"
sealp="$(printf '%q ' "${seal[@]}")"
openp="$(printf '%q ' "${open[@]}")"
# rss_piped NAME PRODUCER COMMAND: peak RSS of COMMAND (shell words)
# reading PRODUCER's output through a pipe and writing into one.
rss_piped() {
	if sh -c "$2 | /usr/bin/time -f %M -o $(q "$res/rss-$1") $3 | cat >/dev/null"; then
		RSS[$1]=$(tail -n 1 "$res/rss-$1")
	else
		log "FAILED: peak RSS of $1"
		errors+=("rss-$1")
	fi
}
# rss_runs TAG SIZE_FILE SIZE_PIPE: seal and open of a file and of a pipe.
rss_runs() {
	local tag=$1 fsize=$2 psize=$3 src=$work/data/rss-in
	rm -f "$src" "$enc" "$dec"
	truncate -s "$fsize" "$src" # sparse: reads as zeros, takes no disk
	rss "seal-file-$tag" "${seal[@]}" -o "$enc" "$src"
	"$work/fresh-state" "$so"
	rss "open-file-$tag" "${open[@]}" -o "$dec" "$enc"
	[ "$(stat -c %s "$dec")" = "$fsize" ] || errors+=("rss-open-file-$tag-size")
	rm -f "$src" "$enc" "$dec"
	rss_piped "seal-pipe-$tag" "head -c $psize /dev/zero" "$sealp"
	"$work/fresh-state" "$so"
	rss_piped "open-pipe-$tag" "head -c $psize /dev/zero | $sealp" "env TMPDIR=$(q "$work") $openp"
}
rss_runs small 1024 1024
rss_runs large "$rss_file" "$rss_pipe"
rss p11oneshot "$bin/p11oneshot" -key bench-ec

# ---------------------------------------------------------------- one-shot
log "one-shot: open of a 1 KiB envelope vs the bare PKCS#11 steps, $small_runs runs"
"${seal[@]}" -o "$work/small/1k.tseal" "$work/small/1k"
hf oneshot-open "$small_runs" 3 "$(q "$work/fresh-state") $(q "$so")" \
	"$openq $(q "$work/small/1k.tseal")" none
hf oneshot-p11 "$small_runs" 3 "" "$(q "$bin/p11oneshot") -key bench-ec" none

# ---------------------------------------------------------------- digests
log "in memory: go test -bench BenchmarkPipeline ./envelope/internal/stream/"
if ! go test -run '^$' -bench 'BenchmarkPipeline/(seal|open)-pipelined' -benchtime 5x ./envelope/internal/stream/ >"$res/pipeline.txt" 2>&1; then
	errors+=(BenchmarkPipeline)
	cat "$res/pipeline.txt" >&2
fi
# pipe_mbs NAME: MB/s of one BenchmarkPipeline sub-benchmark.
pipe_mbs() { awk -v n="BenchmarkPipeline/$1" 'index($1, n) == 1 { for (i = 1; i < NF; i++) if ($(i + 1) == "MB/s") { printf "%.0f", $i; exit } }' "$res/pipeline.txt"; }

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
# The file system's floor: the same outputs, written the same way (see
# scripts/bench/writefloor), and nothing else.
printf '#!/bin/sh\nrm -rf %s && mkdir %s\n' "$(q "$bo")" "$(q "$bo")" >"$work/prep-floor"
chmod +x "$work/prep-floor"
hf batch-writefloor "$runs" "$warmup" "$(q "$work/prep-floor")" \
	"$(q "$bin/writefloor") -dir $(q "$bo") -n $batch_n -size 1024" none

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
fstype=$(df -T "$work" | awk 'NR == 2 { print $2 }')

echo
echo "## tokenseal benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); run took ${elapsed}s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- machine: $cores cores, ${cpu:-unknown CPU}, $(uname -sr), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $fstype"
echo "- tokenseal at commit $commit; $(go version | cut -d' ' -f3); SoftHSM2 $(softhsm2-util --version)"
echo "- peers: age $("$bin/age" --version), $(gpg --version | head -n 1), $(openssl version | cut -d' ' -f1-2), $(hyperfine --version)"
echo "- bulk input: $(mib "$size") of random data in the page cache, outputs on the same file system; medians of $runs runs after $warmup warm-up; small commands: medians of $small_runs runs"
if [ "$cms_size" != "$size" ]; then
	echo "- openssl cms holds the whole message in memory: measured on the first $(mib "$cms_size") only"
fi
echo
echo "| tool | encrypt MB/s | decrypt MB/s | peak RSS enc / dec |"
echo "|---|---|---|---|"
row "cat IN > OUT (copy_file_range, in the kernel; for information)" "$(mbs "${MED[cat]:-}" "$size")" - "$(or_na "$(kib "${RSS[cat]:-}")")"
row "dd bs=1M (a copy through user space)" "$(mbs "${MED[dd]:-}" "$size")" - "$(or_na "$(kib "${RSS[dd]:-}")")"
row "plain Go AES-256-GCM, 64 KiB chunks, one goroutine (gcmref)" "$(mbs "${MED[gcmref-enc]:-}" "$size")" "$(mbs "${MED[gcmref-dec]:-}" "$size")" "$(rssboth gcmref-enc gcmref-dec)"
row "age $("$bin/age" --version) (X25519)" "$(mbs "${MED[age-enc]:-}" "$size")" "$(mbs "${MED[age-dec]:-}" "$size")" "$(rssboth age-enc age-dec)"
row "gpg (RSA-3072, AES-256, no compression)" "$(mbs "${MED[gpg-enc]:-}" "$size")" "$(mbs "${MED[gpg-dec]:-}" "$size")" "$(rssboth gpg-enc gpg-dec)"
row "openssl cms (AES-256-GCM, RSA-OAEP) on $(mib "$cms_size")" "$(mbs "${MED[cms-enc]:-}" "$cms_size")" "$(mbs "${MED[cms-dec]:-}" "$cms_size")" "$(rssboth cms-enc cms-dec)"
row "**tokenseal** seal (signed, p256) / open" "$(mbs "${MED[tokenseal-seal]:-}" "$size")" "$(mbs "${MED[tokenseal-open]:-}" "$size")" "$(rssboth tokenseal-seal tokenseal-open)"
row "tokenseal --anonymous seal / open" "$(mbs "${MED[tokenseal-seal-anon]:-}" "$size")" "$(mbs "${MED[tokenseal-open-anon]:-}" "$size")" -

ms() { f '%.1f ms' "$1 * 1000" "$1"; }
# ratio A B: A / B to two places, empty when either is missing.
ratio() { f '%.2f' "$1 / $2" "$1" "$2"; }
# speedup NAME BASE: how many times faster NAME ran than BASE (time ratio).
speedup() { ratio "${MED[$2]:-}" "${MED[$1]:-}"; }
ss_as=$(speedup tokenseal-seal tokenseal-seal-anon) so_ao=$(speedup tokenseal-open tokenseal-open-anon)
ss_age=$(speedup tokenseal-seal age-enc) so_age=$(speedup tokenseal-open age-dec)
as_age=$(speedup tokenseal-seal-anon age-enc) ao_age=$(speedup tokenseal-open-anon age-dec)
as_ref=$(speedup tokenseal-seal-anon gcmref-enc) ao_ref=$(speedup tokenseal-open-anon gcmref-dec)
oneshot=$(ratio "${MED[oneshot-open]:-}" "${MED[oneshot-p11]:-}")
raw_time=$(f '%.6f' "$batch_n / $raw_ec" "$raw_ec")
floor=$(f '%.6f' "($raw_time > ${MED[batch-writefloor]:-}) ? $raw_time : ${MED[batch-writefloor]:-}" "$raw_time" "${MED[batch-writefloor]:-}")
batch=$(ratio "${MED[batch-open]:-}" "$floor")
# flat TAG: how far apart the large and the small run's peak RSS are, in MiB.
flat() {
	local a=${RSS[$1-large]:-} b=${RSS[$1-small]:-}
	f '%.2f' "(($a > $b) ? $a - $b : $b - $a) / 1024" "$a" "$b"
}
peak="" peak_of=""
for k in seal-file-small seal-file-large open-file-small open-file-large seal-pipe-small seal-pipe-large open-pipe-small open-pipe-large; do
	v=${RSS[$k]:-}
	[ -n "$v" ] || continue
	if [ -z "$peak" ] || [ "$v" -gt "$peak" ]; then peak=$v peak_of=$k; fi
done
over_p11=$(f '%.1f' "($peak - ${RSS[p11oneshot]:-}) / 1024" "$peak" "${RSS[p11oneshot]:-}")

echo
echo "| target (issue 13) | measured | goal | |"
echo "|---|---|---|---|"
t() { printf '| %s | %s | %s %s | %s |\n' "$1" "$(or_na "$2")${3:+ ($3)}" "$4" "$5" "$(verdict "$2" "$4" "$5")"; }
t "signed seal ÷ anonymous seal, throughput" "$ss_as" "" '>=' 0.85
t "signed open ÷ anonymous open, throughput" "$so_ao" "" '>=' 0.85
t "signed seal ÷ age encrypt" "$ss_age" "" '>=' 1.5
t "signed open ÷ age decrypt" "$so_age" "" '>=' 1.5
t "anonymous seal ÷ age encrypt" "$as_age" "" '>=' 2
t "anonymous open ÷ age decrypt" "$ao_age" "" '>=' 2
t "anonymous seal ÷ one-goroutine reference (gcmref)" "$as_ref" "" '>=' 1.2
t "anonymous open ÷ one-goroutine reference (gcmref)" "$ao_ref" "" '>=' 1.2
t "peak RSS, $(mib "$rss_file") − 1 KiB, seal file → file (MiB)" "$(flat seal-file)" "$(or_na "$(kib "${RSS[seal-file-large]:-}")") vs $(or_na "$(kib "${RSS[seal-file-small]:-}")")" '<=' 1
t "peak RSS, $(mib "$rss_file") − 1 KiB, open file → file (MiB)" "$(flat open-file)" "$(or_na "$(kib "${RSS[open-file-large]:-}")") vs $(or_na "$(kib "${RSS[open-file-small]:-}")")" '<=' 1
t "peak RSS, $(mib "$rss_pipe") − 1 KiB, seal pipe → pipe (MiB)" "$(flat seal-pipe)" "$(or_na "$(kib "${RSS[seal-pipe-large]:-}")") vs $(or_na "$(kib "${RSS[seal-pipe-small]:-}")")" '<=' 1
t "peak RSS, $(mib "$rss_pipe") − 1 KiB, open pipe → pipe (MiB)" "$(flat open-pipe)" "$(or_na "$(kib "${RSS[open-pipe-large]:-}")") vs $(or_na "$(kib "${RSS[open-pipe-small]:-}")")" '<=' 1
t "peak RSS of tokenseal − bare PKCS#11 program (MiB)" "$over_p11" "$(or_na "$(kib "$peak")") (${peak_of:-n/a}) vs $(or_na "$(kib "${RSS[p11oneshot]:-}")")" '<=' 6
t "one-shot open of 1 KiB ÷ bare PKCS#11 program, medians of $small_runs" "$oneshot" "$(or_na "$(ms "${MED[oneshot-open]:-}")") vs $(or_na "$(ms "${MED[oneshot-p11]:-}")")" '<=' 1.25
t "batch open of $batch_n ÷ max(token's $batch_n unwraps, bare writes of $batch_n files)" "$batch" "$(or_na "$(ms "${MED[batch-open]:-}")") vs max($(or_na "$(ms "$raw_time")"), $(or_na "$(ms "${MED[batch-writefloor]:-}")"))" '<=' 1.3
pg_ratio=$(f '%.2f' "${MED[batch-open-pg]:-} / ${MED[batch-open]:-}" "${MED[batch-open-pg]:-}" "${MED[batch-open]:-}")
pg8_rate=$(f '%.0f' "$batch_n / ${MED[batch-open-pg-8]:-}" "${MED[batch-open-pg-8]:-}")
echo "| batch open of $batch_n, PostgreSQL ledger / SQLite ledger (issue 14) | $(or_na "$pg_ratio") ($(or_na "$(ms "${MED[batch-open-pg]:-}")") vs $(or_na "$(ms "${MED[batch-open]:-}")")) | <= 1.3 | $(verdict "$pg_ratio" '<=' 1.3) |"
echo "| accepted envelopes/s, 8 openers on one PostgreSQL ledger (issue 14) | $(or_na "$pg8_rate")/s ($batch_n in $(or_na "$(ms "${MED[batch-open-pg-8]:-}")")) | measured | |"
if [ "$rss_file" != "$rss_size" ] || [ "$rss_pipe" != "$rss_size" ]; then
	echo
	echo "The disk had $(mib "$avail") free: the memory runs used $(mib "$rss_file") files and $(mib "$rss_pipe") pipes instead of $(mib "$rss_size")."
fi

# The bound: per-byte CPU costs (ns) of the work, and what they allow
# on this many cores. Writes into one file go one at a time, so the
# write is a floor of its own.
bound() { # CRYPTO_NS: best time per byte on $cores cores
	f '%.3f' "(($c_read + $1 + $c_write) / $cores > $c_write) ? ($c_read + $1 + $c_write) / $cores : $c_write" "$1" "$c_read" "$c_write"
}
b_as=$(bound "$c_seal") b_ao=$(bound "$c_open")
b_ss=$(bound "$(f '%.3f' "$c_seal + $c_sha" "$c_seal" "$c_sha")") b_so=$(bound "$(f '%.3f' "$c_open + $c_sha" "$c_open" "$c_sha")")
echo
echo "Per-byte costs on one core (ns/byte; bytecost and dd): AES-256-GCM seal $(or_na "$c_seal"), open $(or_na "$c_open"); SHA-256 $(or_na "$c_sha"); reading the page cache $(or_na "$c_read"); writing it $(or_na "$c_write")."
echo "On $cores cores the best a file → file envelope can do is max((read + crypto + write) / $cores, write) per byte: anonymous seal $(or_na "$b_as"), open $(or_na "$b_ao"); signed (plus SHA-256) seal $(or_na "$b_ss"), open $(or_na "$b_so") ns/byte."
echo "So signed ÷ anonymous throughput is at most $(or_na "$(ratio "$b_as" "$b_ss")") (seal) and $(or_na "$(ratio "$b_ao" "$b_so")") (open) here; measured $(or_na "$ss_as") and $(or_na "$so_ao")."
echo
dd_ratio() { ratio "${MED[$1]:-}" "${MED[dd]:-}"; }
echo "tokenseal ÷ dd bs=1M time: signed seal $(or_na "$(dd_ratio tokenseal-seal)"), open $(or_na "$(dd_ratio tokenseal-open)"); anonymous seal $(or_na "$(dd_ratio tokenseal-seal-anon)"), open $(or_na "$(dd_ratio tokenseal-open-anon)")."
echo "In memory, $cores cores (go test -bench BenchmarkPipeline, MB/s): seal anonymous $(or_na "$(pipe_mbs seal-pipelined/anonymous)"), with chunk digests $(or_na "$(pipe_mbs seal-pipelined/digests)"); open anonymous $(or_na "$(pipe_mbs open-pipelined/anonymous)"), with chunk digests $(or_na "$(pipe_mbs open-pipelined/digests)")."
r0() { or_na "$(f '%.0f' "$1" "$1")"; }
echo "Token raw rates (scripts/bench/p11rate: one process, one login, one session per goroutine; median of 3): ECDH-P-256 derive $(r0 "$raw_ec1")/s on 1 session, $(r0 "$raw_ec2")/s on 2; RSA-3072 OAEP unwrap $(r0 "$raw_rsa1")/s on 1, $(r0 "$raw_rsa2")/s on 2."

if [ ${#errors[@]} -gt 0 ]; then
	echo
	echo "Not measured (failed): ${errors[*]}"
	exit 1
fi
