#!/usr/bin/env bash
# /metrics of a live, busy hvmmd: the port hvmmd logs for --metrics-addr
# port 0 serves; `promtool check metrics` finds nothing to report; the
# README's table matches the families served (tools/metrics_table.py);
# walks keep moving under a workload larger than the TLB; RPCs are counted by method and code;
# a destroyed domain's series are gone.
set -uo pipefail
HVMMD=$(readlink -f server/hvmmd)
CTL_BIN=$(readlink -f client/hvmmctl)
TABLE=$(readlink -f tools/metrics_table.py)
README=$(readlink -f README.md)
dir=$(mktemp -d /tmp/hvmm-metrics-XXXXXX)
sock="$dir/s/hvmm.sock"
failures=0
daemon_pid=""
trap '[ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ctl() { "$CTL_BIN" --addr "unix:$sock" --timeout 30 "$@"; }
command -v promtool >/dev/null || { echo "promtool missing (Debian package prometheus)"; exit 1; }

"$HVMMD" --listen="unix:$sock" --metrics-addr=127.0.0.1:0 --pcpus=2 \
  --frames=16384 >"$dir/log" 2>&1 &
daemon_pid=$!
url=""
for _ in $(seq 1 1200); do
  url=$(sed -n 's|.*metrics on \(http://[^ ]*\)$|\1|p' "$dir/log")
  [ -n "$url" ] && break
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$url" ] || { cat "$dir/log"; echo "FAIL: hvmmd logged no metrics address"; exit 1; }
case "$url" in http://127.0.0.1:0/*) fail "logged port 0, not the bound port";; esac
scrape() { curl -sf --max-time 30 "$url"; }
# value NAME_WITH_LABELS: the sample's value in a fresh scrape ("" if absent).
value() { scrape | awk -v n="$1" '$1 == n { print $2 }'; }

ctl domain create m1 --vcpus 2 --max-pages 1024 >/dev/null || fail "create"
ctl pt map 1 0x40000000 512 >/dev/null || fail "map"
ctl workload start 1 --range 0x40000000:512 >/dev/null || fail "workload start"
ctl domain get 99 >/dev/null 2>&1  # NOT_FOUND, counted below.
# Churn that flushes: unmap and map again, a few times.
for _ in 1 2 3; do
  ctl pt unmap 1 0x40000000 64 >/dev/null || fail "unmap"
  ctl pt map 1 0x40000000 64 >/dev/null || fail "map again"
done

# Polls until the workload has walked (progress, not a timing assumption).
walks=""
for _ in $(seq 1 1200); do
  walks=$(value hvmm_walks_total)
  [ -n "$walks" ] && [ "${walks%%.*}" -gt 0 ] 2>/dev/null && break
  sleep 0.05
done
[ -n "$walks" ] && [ "${walks%%.*}" -gt 0 ] || fail "hvmm_walks_total did not move: $walks"
walks2=""
for _ in $(seq 1 1200); do
  walks2=$(value hvmm_walks_total)
  awk -v a="$walks" -v b="$walks2" 'BEGIN { exit !(b > a) }' && break
  sleep 0.05
done
awk -v a="$walks" -v b="$walks2" 'BEGIN { exit !(b > a) }' ||
  fail "hvmm_walks_total is not increasing ($walks -> $walks2)"

scrape >"$dir/scrape.txt" || fail "scrape failed"
# promtool prints nothing and exits 0 for clean metrics.
promtool check metrics <"$dir/scrape.txt" >"$dir/promtool.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && [ ! -s "$dir/promtool.out" ] ||
  fail "promtool check metrics (rc $rc): $(cat "$dir/promtool.out")"

/usr/bin/python3 "$TABLE" --check "$README" <"$dir/scrape.txt" ||
  fail "README.md's metrics table is stale (see above)"

grep -q '^hvmm_build_info{revision="[^"]*",version="[0-9.]*"} 1$' "$dir/scrape.txt" ||
  fail "hvmm_build_info: $(grep hvmm_build_info "$dir/scrape.txt")"
grep -q '^hvmm_domains 1$' "$dir/scrape.txt" || fail "hvmm_domains is not 1"
grep -q '^hvmm_deferred_frees_pending{domain="1"} ' "$dir/scrape.txt" ||
  fail "no pending-frees series for domain 1"
grep -q '^hvmm_grpc_requests_total{code="NOT_FOUND",method="hvmm.v1.MemoryManager/GetDomain"} 1$' "$dir/scrape.txt" ||
  fail "the NOT_FOUND GetDomain was not counted"
grep -q '^hvmm_grpc_requests_total{code="OK",method="hvmm.v1.MemoryManager/MapRange"} 4$' "$dir/scrape.txt" ||
  fail "4 MapRange calls not counted: $(grep MapRange "$dir/scrape.txt" | head -3)"
grep -q '^hvmm_flush_requests_total{backend="assisted",reason="unmap"} [1-9]' "$dir/scrape.txt" ||
  fail "unmap flushes not counted"
grep -q '^hvmm_type_changes_total{from="none",to="writable"} [1-9]' "$dir/scrape.txt" ||
  fail "type changes not counted"
grep -q '^hvmm_safety_violations_total{kind="existence",policy="assisted+rcu"} 0$' "$dir/scrape.txt" ||
  fail "violations series missing or non-zero"
grep -q '^exposer_scrapes_total ' "$dir/scrape.txt" ||
  fail "prometheus-cpp's exposer_* metrics are documented as present"

ctl domain destroy 1 >/dev/null || fail "destroy"
scrape >"$dir/after.txt"
grep -q 'domain="1"' "$dir/after.txt" && fail "domain 1's series outlived it"
grep -q '^hvmm_domains 0$' "$dir/after.txt" || fail "hvmm_domains is not 0"

kill -TERM "$daemon_pid"
wait "$daemon_pid" || fail "hvmmd exited $?"
daemon_pid=""
[ "$failures" -eq 0 ] || { echo "metrics_test: $failures failures"; exit 1; }
echo "metrics_test: ok"
