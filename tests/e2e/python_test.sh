#!/usr/bin/env bash
# The Python example client (client/python/example.py) against a live
# hvmmd, with Debian's /usr/bin/python3 and the generated stubs.
set -uo pipefail
HVMMD=$(readlink -f server/hvmmd)
gen=$(readlink -f client/python/gen/hvmm/v1/hvmm_pb2.py); gen=${gen%/hvmm/v1/hvmm_pb2.py}
pydir=$(dirname "$(readlink -f client/python/example.py)")
dir=$(mktemp -d /tmp/hvmm-py-XXXXXX)
sock="$dir/hvmm.sock"
daemon_pid=""
trap '[ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null; rm -rf "$dir"' EXIT

"$HVMMD" --metrics-addr=127.0.0.1:0 --listen="unix:$sock" --pcpus=2 --frames=16384 \
  --bookmark-seconds=1 >"$dir/hvmmd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 600); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "hvmmd did not come up"; cat "$dir/hvmmd.log"; exit 1; }

PYTHONPATH="$gen:$pydir" /usr/bin/python3 "$pydir/example.py" --addr "unix:$sock"
rc=$?
kill -TERM "$daemon_pid"; wait "$daemon_pid"; drc=$?; daemon_pid=""
[ "$rc" -eq 0 ] || { echo "example.py exited $rc"; exit 1; }
[ "$drc" -eq 0 ] || { echo "hvmmd exited $drc"; tail -5 "$dir/hvmmd.log"; exit 1; }
echo "python_test: ok"
