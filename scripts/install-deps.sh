#!/usr/bin/env bash
# Install what the tests and the demo need from Debian/Ubuntu packages,
# when missing: the three PKCS#11 implementations the tests run on
# (SoftHSM2; tpm2-pkcs11 over the swtpm TPM simulator, behind tpm2-abrmd
# on a private D-Bus bus; opencryptoki's soft token), OpenSC's pkcs11-tool
# (the tests make tokens and foreign keys with it), openssl, PostgreSQL
# (initdb and postgres for the shared-ledger tests: internal/pgtest starts
# its own server from /usr/lib/postgresql/VERSION/bin), and a C compiler
# (miekg/pkcs11 uses cgo; go test -race needs it too); OpenSSL's PKCS#11
# engine (the CMS tests decrypt with openssl and the key on the token) and
# GNU time (make bench measures peak memory with /usr/bin/time -v).
# Uses sudo only when not root. Safe to run again: does nothing when all
# are present.
set -euo pipefail

have_file() {
	for p in "$@"; do
		[ -f "$p" ] && return 0
	done
	return 1
}
have_cmd() { command -v "$1" >/dev/null 2>&1; }

pkgs=()
need() { pkgs+=("$@"); }

have_cmd softhsm2-util && have_file /usr/lib/softhsm/libsofthsm2.so \
	/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/local/lib/softhsm/libsofthsm2.so || need softhsm2
have_cmd pkcs11-tool || need opensc
have_cmd swtpm || need swtpm swtpm-tools
have_file /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so \
	/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so || need libtpm2-pkcs11-1
have_cmd tpm2-abrmd || have_file /usr/sbin/tpm2-abrmd || need tpm2-abrmd
have_file /usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0 \
	/usr/lib/aarch64-linux-gnu/libtss2-tcti-tabrmd.so.0 || need libtss2-tcti-tabrmd0
have_cmd dbus-daemon || need dbus-daemon
have_file /usr/sbin/pkcsslotd || need opencryptoki
have_cmd openssl || need openssl
have_file /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so \
	/usr/lib/aarch64-linux-gnu/engines-3/pkcs11.so || need libengine-pkcs11-openssl
[ -x /usr/bin/time ] || need time
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need postgresql
have_cmd "${CC:-gcc}" || have_cmd cc || need gcc libc6-dev

if [ "${#pkgs[@]}" -eq 0 ]; then
	echo "install-deps: softhsm2, opensc, swtpm, tpm2-pkcs11, tpm2-abrmd, dbus, opencryptoki, openssl and its PKCS#11 engine, time, postgresql and a C compiler already installed"
	exit 0
fi

if ! have_cmd apt-get; then
	echo "install-deps: error: missing ${pkgs[*]} and apt-get not available; install them with your package manager" >&2
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if ! have_cmd sudo; then
		echo "install-deps: error: not root and sudo not found; install ${pkgs[*]} as root" >&2
		exit 1
	fi
	SUDO="sudo"
fi

echo "install-deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${pkgs[@]}"
have_cmd softhsm2-util || { echo "install-deps: error: softhsm2 still not found after install" >&2; exit 1; }
have_cmd swtpm || { echo "install-deps: error: swtpm still not found after install" >&2; exit 1; }
have_file /usr/sbin/pkcsslotd || { echo "install-deps: error: opencryptoki still not found after install" >&2; exit 1; }
