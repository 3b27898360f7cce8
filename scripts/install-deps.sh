#!/usr/bin/env bash
# Install SoftHSM2 and OpenSC from Debian/Ubuntu packages when missing,
# and a C compiler (miekg/pkcs11 uses cgo; go test -race needs it too).
# Uses sudo only when not root. Safe to run again: does nothing when both
# are present.
set -euo pipefail

# PostgreSQL (initdb, postgres) for the shared-ledger tests: internal/pgtest
# starts its own server from /usr/lib/postgresql/VERSION/bin.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: installing postgresql"
	PG_SUDO=""
	[ "$(id -u)" -ne 0 ] && PG_SUDO="sudo"
	DEBIAN_FRONTEND=noninteractive $PG_SUDO apt-get update
	DEBIAN_FRONTEND=noninteractive $PG_SUDO apt-get install -y --no-install-recommends postgresql
fi

have_softhsm() {
	command -v softhsm2-util >/dev/null 2>&1 || return 1
	for p in /usr/lib/softhsm/libsofthsm2.so \
		/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
		/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so \
		/usr/local/lib/softhsm/libsofthsm2.so; do
		[ -f "$p" ] && return 0
	done
	return 1
}
have_opensc() { command -v pkcs11-tool >/dev/null 2>&1; }
have_cc() { command -v "${CC:-gcc}" >/dev/null 2>&1 || command -v cc >/dev/null 2>&1; }

if have_softhsm && have_opensc && have_cc; then
	echo "install-deps: softhsm2, opensc and a C compiler already installed"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: error: softhsm2/opensc missing and apt-get not available; install them with your package manager" >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-deps: error: not root and sudo not found; install softhsm2 and opensc as root" >&2
		exit 1
	fi
	SUDO="sudo"
fi

pkgs=()
have_softhsm || pkgs+=(softhsm2)
have_opensc || pkgs+=(opensc)
have_cc || pkgs+=(gcc libc6-dev)
echo "install-deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${pkgs[@]}"
have_softhsm || { echo "install-deps: error: softhsm2 still not found after install" >&2; exit 1; }
