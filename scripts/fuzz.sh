#!/usr/bin/env bash
# Run every Go fuzz target in the module for FUZZTIME each (default 60s),
# one after another, and print executions and time per target. Targets
# are found with `go test -list '^Fuzz'`, so a new one is picked up
# without editing this file. Crashers are written by `go test` to the
# package's testdata/fuzz/<FuzzName>/; the script fails if any target
# fails. FUZZ_PACKAGES limits the packages (default ./...).
#
# Go 1.26's fuzz coordinator can report a bare "context deadline
# exceeded" failure when -fuzztime ends while a worker is mid-input
# (go.dev/issue/75804, fixed in Go 1.27). Such a run wrote no failing
# input and is counted as passed, marked "ok*"; any run that wrote an
# input to testdata/fuzz fails.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
pkgs=$($GO list ${FUZZ_PACKAGES:-./...})
summary=()
failed=0
for pkg in $pkgs; do
	targets=$($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for f in $targets; do
		echo "== $pkg $f ($FUZZTIME)"
		log=$(mktemp)
		dir=$($GO list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$f
		before=$(ls "$dir" 2>/dev/null | sort)
		start=$(date +%s)
		if $GO test -run '^$' -fuzz "^${f}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$log"; then
			status=ok
		elif [ "$(ls "$dir" 2>/dev/null | sort)" = "$before" ] &&
			grep -q '^    context deadline exceeded$' "$log" &&
			! grep -q 'Failing input written' "$log"; then
			status='ok*'
		else
			status=FAIL
			failed=1
		fi
		secs=$(($(date +%s) - start))
		execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
		rm -f "$log"
		summary+=("$(printf '%-4s %-52s %-12s %10s execs %5ss' "$status" "${pkg#github.com/tokenseal/tokenseal/}" "$f" "$execs" "$secs")")
	done
done
echo
echo "== fuzzing summary (FUZZTIME=$FUZZTIME)"
printf '%s\n' "${summary[@]}"
if printf '%s\n' "${summary[@]}" | grep -q '^ok\*'; then
	echo "ok*: stopped by the -fuzztime deadline race of go.dev/issue/75804, no failing input"
fi
exit $failed
