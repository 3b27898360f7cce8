#!/usr/bin/env bash
# Create a disposable project-local SoftHSM2 token under .softhsm/ with
# its own SOFTHSM2_CONF (written from softhsm-config/softhsm2.conf.in),
# and print the environment to use it.
#
#   eval "$(scripts/make-token.sh)"     # then: bin/tokenseal key list
#
# Environment: TOKEN_LABEL (default tokenseal-demo), SO_PIN (default
# 5678-so), USER_PIN (default 1234-user), SOFTHSM_DIR (default .softhsm),
# FRESH=1 to delete an existing token store first.
set -euo pipefail
cd "$(dirname "$0")/.."

label="${TOKEN_LABEL:-tokenseal-demo}"
so_pin="${SO_PIN:-5678-so}"
user_pin="${USER_PIN:-1234-user}"
dir="${SOFTHSM_DIR:-.softhsm}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

if [ "${FRESH:-0}" = 1 ]; then
	rm -rf "$dir/tokens"
fi
mkdir -p "$dir/tokens"
chmod 700 "$dir" "$dir/tokens"
sed "s|@TOKENDIR@|$dir/tokens|" softhsm-config/softhsm2.conf.in >"$dir/softhsm2.conf"
export SOFTHSM2_CONF="$dir/softhsm2.conf"

module=""
for p in /usr/lib/softhsm/libsofthsm2.so \
	/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/local/lib/softhsm/libsofthsm2.so; do
	if [ -f "$p" ]; then module="$p"; break; fi
done
if [ -z "$module" ]; then
	echo "make-token: error: SoftHSM2 not found; run scripts/install-deps.sh" >&2
	exit 1
fi

if softhsm2-util --show-slots 2>/dev/null | grep -qE "Label:[[:space:]]*$label[[:space:]]*\$"; then
	echo "make-token: token \"$label\" already exists in $dir (FRESH=1 to start over)" >&2
else
	softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$user_pin" >&2
fi

umask 077
printf '%s\n' "$user_pin" >"$dir/user.pin"

cat <<ENV
export SOFTHSM2_CONF='$SOFTHSM2_CONF'
export TOKENSEAL_MODULE='$module'
export TOKENSEAL_TOKEN='$label'
export TOKENSEAL_PIN_FILE='$dir/user.pin'
ENV
