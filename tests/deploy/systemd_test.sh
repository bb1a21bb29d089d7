#!/usr/bin/env bash
# deploy/systemd: the unit passes `systemd-analyze verify` (with ExecStart
# pointed at the hvmmd just built: verify checks that the binary exists),
# and `systemd-analyze security --offline=yes` rates its exposure at most
# 1.5 (THRESHOLD=15 on its 0..100 scale; the unit rates 0.9 today, and
# systemd calls anything below 2.0 "OK"). Then hvmmd speaks sd_notify:
# notify_check.py plays systemd's notify socket.
set -uo pipefail
HVMMD=$(readlink -f server/hvmmd)
UNIT=$(readlink -f deploy/systemd/hvmmd.service)
ENV_FILE=$(readlink -f deploy/systemd/hvmmd.env)
THRESHOLD=15
dir=$(mktemp -d /tmp/hvmm-systemd-XXXXXX)
trap 'rm -rf "$dir"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

sed "s|/usr/local/bin/hvmmd|$HVMMD|" "$UNIT" >"$dir/hvmmd.service"
grep -q "^ExecStart=$HVMMD " "$dir/hvmmd.service" || fail "ExecStart not rewritten"
out=$(systemd-analyze verify "$dir/hvmmd.service" 2>&1); rc=$?
[ "$rc" -eq 0 ] && [ -z "$out" ] || fail "systemd-analyze verify (rc $rc): $out"
systemd-analyze security --offline=yes --threshold="$THRESHOLD" \
  "$dir/hvmmd.service" >"$dir/security.txt" 2>&1
rc=$?
grep "Overall exposure level" "$dir/security.txt"
[ "$rc" -eq 0 ] || fail "exposure above $THRESHOLD/100: $(grep -E '✗' "$dir/security.txt")"
for key in "Type=notify" "WatchdogSec=" "NoNewPrivileges=yes" \
  "ProtectSystem=strict" "PrivateTmp=yes" "RuntimeDirectory=hvmm" \
  "RuntimeDirectoryMode=0700" "UMask=0077" "EnvironmentFile=-/etc/default/hvmmd"; do
  grep -q "^$key" "$UNIT" || fail "the unit lacks $key"
done
# The example environment file sets what ExecStart uses.
grep -q '^HVMMD_METRICS_ADDR=' "$ENV_FILE" || fail "env file: no HVMMD_METRICS_ADDR"
args=$(sed -n 's/^HVMMD_ARGS="\(.*\)"$/\1/p' "$ENV_FILE")
[ -n "$args" ] || fail "env file: no HVMMD_ARGS"
# hvmmd starts with them (it refuses unknown flags and bad values).
# shellcheck disable=SC2086
"$HVMMD" $args --listen="unix:$dir/s/h.sock" --metrics-addr=none >"$dir/env.log" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
  grep -q "serving hvmm.v1" "$dir/env.log" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
grep -q "serving hvmm.v1" "$dir/env.log" || fail "hvmmd refused the env file's HVMMD_ARGS: $(cat "$dir/env.log")"
kill -TERM "$pid" 2>/dev/null; wait "$pid" || fail "hvmmd with the env file's args exited $?"

/usr/bin/python3 "$(dirname "$0")/notify_check.py" "$HVMMD" "$dir" ||
  fail "sd_notify protocol"
[ "$failures" -eq 0 ] || { echo "systemd_test: $failures failures"; exit 1; }
echo "systemd_test: ok"
