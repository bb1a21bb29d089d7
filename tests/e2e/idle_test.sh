#!/usr/bin/env bash
# An idle hvmmd uses no measurable CPU: pCPUs without workload sleep until
# kicked, and only the event sampler (once a second) and gRPC's timers
# wake. Measured from /proc/PID/stat (utime + stime, in clock ticks) over
# an idle interval, with a domain present and a Watch stream open.
set -uo pipefail
HVMMD=$(readlink -f server/hvmmd)
CTL_BIN=$(readlink -f client/hvmmctl)
dir=$(mktemp -d /tmp/hvmm-idle-XXXXXX)
sock="$dir/hvmm.sock"
pids=()
trap 'kill -KILL "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
SECONDS_IDLE=${HVMM_IDLE_SECONDS:-5}

"$HVMMD" --metrics-addr=127.0.0.1:0 --listen="unix:$sock" --pcpus=8 --frames=65536 >"$dir/log" 2>&1 &
daemon=$!
pids+=("$daemon")
for _ in $(seq 1 600); do [ -S "$sock" ] && break; sleep 0.05; done
ctl() { "$CTL_BIN" --addr "unix:$sock" "$@"; }
ctl domain create idle --vcpus 4 --max-pages 1024 >/dev/null || exit 1
ctl pt map 1 0x40000000 256 >/dev/null || exit 1
ctl watch >/dev/null 2>&1 &
pids+=("$!")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
hz=$(getconf CLK_TCK)
before=$(cpu_ticks)
sleep "$SECONDS_IDLE"
after=$(cpu_ticks)
used=$((after - before))
# 1% of one core over the interval.
limit=$((hz * SECONDS_IDLE / 100))
echo "idle: hvmmd (8 pCPUs, 1 domain, 1 watch) used $used ticks of CPU in" \
  "${SECONDS_IDLE}s (CLK_TCK $hz; limit $limit = 1% of one core)"
kill -TERM "$daemon"; wait "$daemon"
[ "$used" -le "$limit" ] || { echo "idle_test: too busy"; exit 1; }
echo "idle_test: ok"
