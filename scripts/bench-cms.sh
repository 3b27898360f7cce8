#!/usr/bin/env bash
# Side-by-side CMS benchmark: `openssl cms` against envelope/cms (through
# scripts/bench/cmsbench, software keys) on one input, in one run, with
# the issue 15 targets. Every command runs BENCH_RUNS times, the commands
# interleaved round by round so that a noisy neighbour hits all of them;
# the report gives medians. Peak RSS is GNU time's %M (KiB) of each run
# (the median is shown). Nothing here is a test: the script exits 0 when a
# target is missed and 1 only when a measurement failed.
#
#   scripts/bench-cms.sh                  # 1 GiB, 5 runs
#   BENCH_SIZE=256MiB BENCH_RUNS=3 scripts/bench-cms.sh
#
# Environment: BENCH_SIZE (default 1GiB; K/M/G and KiB/MiB/GiB are binary),
# BENCH_RUNS (default 5), BENCH_TMPDIR (default $TMPDIR or /tmp),
# BENCH_KEEP=1 keeps the temporary directory. The lead can fold the rows
# into `make bench` (scripts/bench.sh) once `tokenseal --format cms` exists.
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

size=$(to_bytes "${BENCH_SIZE:-1GiB}")
runs=${BENCH_RUNS:-5}
command -v openssl >/dev/null || die "openssl not found"
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found: apt-get install time"

work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/bench-cms.XXXXXX")
cleanup() { if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

log "building scripts/bench/cmsbench"
go build -o "$work/cmsbench" ./scripts/bench/cmsbench
cb=$work/cmsbench

log "keys: RSA-3072 recipient certificate, P-256 signer"
openssl req -x509 -newkey rsa:3072 -nodes -keyout "$work/r.key" -out "$work/r.crt" -subj /CN=bench-recipient \
	-days 2 -addext keyUsage=keyEncipherment 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/s.key" -out "$work/s.crt" \
	-subj /CN=bench-signer -days 2 2>/dev/null

log "input: $size random bytes"
head -c "$size" /dev/urandom >"$work/in"
cat "$work/in" >/dev/null

declare -A CMD
CMD[openssl-enc]="openssl cms -encrypt -binary -aes-256-gcm -recip $work/r.crt -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -outform DER -in $work/in -out $work/o.cms"
CMD[openssl-dec]="openssl cms -decrypt -binary -inform DER -inkey $work/r.key -recip $work/r.crt -in $work/o.cms -out $work/o.out"
CMD[cms-seal]="$cb seal -r $work/r.crt $work/in $work/t.cms"
CMD[cms-open]="$cb open -k $work/r.key -c $work/r.crt $work/t.cms $work/t.out"
CMD[cms-open-stdout]="$cb open -stdout -k $work/r.key -c $work/r.crt $work/t.cms $work/t.out2"
CMD[cms-seal-signed]="$cb seal -r $work/r.crt -sign $work/s.key -signcert $work/s.crt $work/in $work/ts.cms"
CMD[cms-open-signed]="$cb open -k $work/r.key -c $work/r.crt -trust $work/s.crt $work/ts.cms $work/ts.out"
CMD[cms-seal-cbc]="$cb seal -compat -r $work/r.crt $work/in $work/tc.cms"
CMD[cms-open-cbc]="$cb open -k $work/r.key -c $work/r.crt $work/tc.cms $work/tc.out"
order=(openssl-enc openssl-dec cms-seal cms-open cms-open-stdout cms-seal-signed cms-open-signed cms-seal-cbc cms-open-cbc)

declare -A T R
failed=()
for ((i = 1; i <= runs; i++)); do
	log "round $i of $runs"
	for name in "${order[@]}"; do
		rm -f "$work/o.out" "$work/t.out" "$work/t.out2" "$work/ts.out" "$work/tc.out"
		sync
		s=$(date +%s%N)
		if ! /usr/bin/time -f %M -o "$work/rss" ${CMD[$name]} 2>"$work/err"; then
			log "FAILED: $name: $(tail -n 3 "$work/err")"
			failed+=("$name")
			continue
		fi
		e=$(date +%s%N)
		T[$name]+="$(((e - s) / 1000000)) "
		R[$name]+="$(tail -n 1 "$work/rss") "
	done
done
for f in o.out t.out t.out2 ts.out tc.out; do
	[ -f "$work/$f" ] && ! cmp -s "$work/in" "$work/$f" && { log "FAILED: $f differs from the input"; failed+=("$f"); }
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
declare -A MS MBS RSS
for name in "${order[@]}"; do
	MS[$name]=$(echo "${T[$name]:-}" | median)
	RSS[$name]=$(echo "${R[$name]:-}" | median)
	MBS[$name]=$(awk -v b="$size" -v ms="${MS[$name]:-0}" 'BEGIN { if (ms > 0) printf "%.0f", b / 1e6 / (ms / 1000); else print "n/a" }')
done

echo
echo "## CMS: openssl cms vs envelope/cms ($(awk -v b="$size" 'BEGIN { printf "%g MiB", b / 1048576 }'), median of $runs, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| command | median ms | MB/s | peak RSS MiB |"
echo "|---|---|---|---|"
for name in "${order[@]}"; do
	printf '| %s | %s | %s | %s |\n' "$name" "${MS[$name]:-n/a}" "${MBS[$name]}" \
		"$(awk -v k="${RSS[$name]:-0}" 'BEGIN { printf "%.1f", k / 1024 }')"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.1f", b / a; else print "n/a" }'; }
verdict() { awk -v r="$1" 'BEGIN { print (r != "n/a" && r >= 4) ? "PASS" : "MISS" }'; }
enc=$(ratio "${MS[cms-seal]:-0}" "${MS[openssl-enc]:-0}")
dec=$(ratio "${MS[cms-open]:-0}" "${MS[openssl-dec]:-0}")
echo
echo "| target (issue 15) | measured | goal | |"
echo "|---|---|---|---|"
echo "| seal throughput / openssl cms -encrypt | ${enc}x | >= 4x | $(verdict "$enc") |"
echo "| open throughput / openssl cms -decrypt | ${dec}x | >= 4x | $(verdict "$dec") |"
echo "| peak RSS of cms-seal / cms-open | $(awk -v a="${RSS[cms-seal]:-0}" -v b="${RSS[cms-open]:-0}" 'BEGIN { printf "%.1f / %.1f MiB", a / 1024, b / 1024 }') | constant in the input size | |"
if [ ${#failed[@]} -gt 0 ]; then
	echo
	echo "Not measured (failed): ${failed[*]}"
	exit 1
fi
