#!/usr/bin/env bash
# Create a disposable project-local token and print the environment to
# use it:
#
#   eval "$(scripts/make-token.sh)"                    # SoftHSM2 in .softhsm/
#   eval "$(TOKEN_KIND=tpm2 scripts/make-token.sh)"    # tpm2-pkcs11 on swtpm in .tpm/
#   eval "$(TOKEN_KIND=opencryptoki scripts/make-token.sh)"
#   bin/tokenseal key list
#   scripts/make-token.sh stop                         # stop the TPM simulator and its broker
#
# softhsm: a token store in .softhsm/ with its own SOFTHSM2_CONF (written
#   from softhsm-config/softhsm2.conf.in).
# tpm2: the swtpm TPM simulator on TPM_PORT and TPM_PORT+1 (default
#   23230), a private D-Bus bus and tpm2-abrmd in front of it (tpm2-pkcs11
#   needs a resource manager: a TPM holds three loaded objects), a
#   tpm2-pkcs11 store, all in .tpm/; stopped by their PIDs with "stop".
# opencryptoki: the machine's pkcsslotd (started if not running) and its
#   one soft token (slot 3), initialized with the label when FRESH=1 or
#   when it holds another label. That erases what was on it.
#
# Environment: TOKEN_KIND, TOKEN_LABEL (default tokenseal-demo), SO_PIN,
# USER_PIN (defaults 5678-so / 1234-user; opencryptoki 87654321 /
# demo-pin, its PINs are 4 to 8 characters), FRESH=1 to start over.
set -euo pipefail
cd "$(dirname "$0")/.."

kind="${TOKEN_KIND:-softhsm}"
label="${TOKEN_LABEL:-tokenseal-demo}"
tpmdir="$PWD/.tpm"

stop_tpm() {
	for p in abrmd dbus swtpm; do
		if [ -f "$tpmdir/$p.pid" ]; then
			kill "$(cat "$tpmdir/$p.pid")" 2>/dev/null || true
			rm -f "$tpmdir/$p.pid"
		fi
	done
}

if [ "${1:-}" = stop ]; then
	stop_tpm
	exit 0
fi

emit_pin() {
	umask 077
	printf '%s\n' "$2" >"$1/user.pin"
	echo "export TOKENSEAL_PIN_FILE='$1/user.pin'"
	echo "export TOKENSEAL_TOKEN='$label'"
}

# find_module prints the first of its arguments that exists, or fails
# naming what is missing.
find_module() {
	local what="$1"
	shift
	for p in "$@"; do
		if [ -f "$p" ]; then
			echo "$p"
			return 0
		fi
	done
	echo "make-token: error: $what not found; run scripts/install-deps.sh" >&2
	exit 1
}

# first_free_slot prints the ID of the module's first uninitialized token.
first_free_slot() {
	pkcs11-tool --module "$1" -L 2>/dev/null | awk '
		/^Slot [0-9]+ \(0x[0-9a-f]+\)/ { id = $3; gsub(/[():]/, "", id) }
		/token state: +uninitialized/ { print id; exit }'
}

softhsm() {
	local so_pin="${SO_PIN:-5678-so}" user_pin="${USER_PIN:-1234-user}" dir="$PWD/.softhsm" module
	module="$(find_module SoftHSM2 /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
		/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so)"
	mkdir -p "$dir"
	[ "${FRESH:-0}" = 1 ] && rm -rf "$dir/tokens"
	mkdir -p "$dir/tokens"
	chmod 700 "$dir" "$dir/tokens"
	sed "s|@TOKENDIR@|$dir/tokens|" softhsm-config/softhsm2.conf.in >"$dir/softhsm2.conf"
	export SOFTHSM2_CONF="$dir/softhsm2.conf"
	if softhsm2-util --show-slots 2>/dev/null | grep -qE "Label:[[:space:]]*$label[[:space:]]*\$"; then
		echo "make-token: token \"$label\" already exists in $dir (FRESH=1 to start over)" >&2
	else
		softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$user_pin" >&2
	fi
	echo "export SOFTHSM2_CONF='$SOFTHSM2_CONF'"
	echo "export TOKENSEAL_MODULE='$module'"
	emit_pin "$dir" "$user_pin"
}

tpm2() {
	local so_pin="${SO_PIN:-5678-so}" user_pin="${USER_PIN:-1234-user}" port="${TPM_PORT:-23230}" module
	module="$(find_module tpm2-pkcs11 /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so /usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so)"
	if [ "${FRESH:-0}" = 1 ]; then
		stop_tpm
		rm -rf "$tpmdir"
	fi
	mkdir -p "$tpmdir/state" "$tpmdir/store"
	chmod 700 "$tpmdir"
	local name=com.intel.tss2.Tabrmd.tokenseal bus="unix:path=$tpmdir/bus"
	export DBUS_SESSION_BUS_ADDRESS="$bus" TSS2_LOG=all+none \
		TPM2_PKCS11_TCTI="tabrmd:bus_name=$name,bus_type=session" TPM2_PKCS11_STORE="$tpmdir/store"
	if ! { [ -f "$tpmdir/swtpm.pid" ] && kill -0 "$(cat "$tpmdir/swtpm.pid")" 2>/dev/null; }; then
		stop_tpm
		swtpm socket --tpm2 --tpmstate dir="$tpmdir/state" --daemon --pid file="$tpmdir/swtpm.pid" \
			--server type=tcp,bindaddr=127.0.0.1,port="$port" --ctrl type=tcp,bindaddr=127.0.0.1,port=$((port + 1)) \
			--flags not-need-init,startup-clear
		cat >"$tpmdir/dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>$bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>
EOF
		dbus-daemon --config-file="$tpmdir/dbus.conf" --fork --nopidfile --print-pid=3 3>"$tpmdir/dbus.pid"
		sleep 0.3
		tpm2-abrmd --session --allow-root --dbus-name="$name" --flush-all --max-transients=64 \
			--tcti="swtpm:host=127.0.0.1,port=$port" >"$tpmdir/abrmd.log" 2>&1 &
		echo $! >"$tpmdir/abrmd.pid"
		for _ in $(seq 50); do
			pkcs11-tool --module "$module" -L >/dev/null 2>&1 && break
			sleep 0.2
		done
	fi
	if pkcs11-tool --module "$module" -L 2>/dev/null | grep -qE "token label +: $label\$"; then
		echo "make-token: token \"$label\" already exists in $tpmdir (FRESH=1 to start over)" >&2
	else
		local slot
		slot="$(first_free_slot "$module")"
		pkcs11-tool --module "$module" --slot "$slot" --init-token --label "$label" --so-pin "$so_pin" >&2
		pkcs11-tool --module "$module" --slot "$slot" --init-pin --so-pin "$so_pin" --pin "$user_pin" >&2
	fi
	echo "export DBUS_SESSION_BUS_ADDRESS='$bus'"
	echo "export TPM2_PKCS11_TCTI='$TPM2_PKCS11_TCTI'"
	echo "export TPM2_PKCS11_STORE='$TPM2_PKCS11_STORE'"
	echo "export TSS2_LOG='all+none'"
	echo "export TOKENSEAL_MODULE='$module'"
	emit_pin "$tpmdir" "$user_pin"
}

opencryptoki() {
	local so_pin="${SO_PIN:-87654321}" user_pin="${USER_PIN:-demo-pin}" dir="$PWD/.opencryptoki" module
	module="$(find_module opencryptoki /usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so /usr/lib/aarch64-linux-gnu/pkcs11/libopencryptoki.so)"
	pgrep -x pkcsslotd >/dev/null || /usr/sbin/pkcsslotd
	mkdir -p "$dir"
	chmod 700 "$dir"
	if [ "${FRESH:-0}" != 1 ] && pkcs11-tool --module "$module" -L 2>/dev/null | grep -qE "token label +: $label\$"; then
		echo "make-token: opencryptoki's soft token is already \"$label\" (FRESH=1 to start over)" >&2
	else
		echo "make-token: initializing opencryptoki's soft token (slot 3) as \"$label\": what was on it is erased" >&2
		pkcs11-tool --module "$module" --slot 3 --init-token --label "$label" --so-pin "$so_pin" >&2
		pkcs11-tool --module "$module" --slot 3 --init-pin --so-pin "$so_pin" --pin "$user_pin" >&2
	fi
	echo "export TOKENSEAL_MODULE='$module'"
	emit_pin "$dir" "$user_pin"
}

case "$kind" in
softhsm | softhsm2) softhsm ;;
tpm2 | tpm) tpm2 ;;
opencryptoki | ock) opencryptoki ;;
*)
	echo "make-token: error: TOKEN_KIND=$kind: want softhsm, tpm2 or opencryptoki" >&2
	exit 1
	;;
esac
