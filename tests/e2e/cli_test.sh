#!/usr/bin/env bash
# hvmmctl against a live hvmmd on a temporary socket: table and JSON
# output, exit codes (0 ok, 1 call failed, 2 usage, 3 not serving), the
# socket's mode, a second daemon refused while the first serves, and a
# SIGTERM during activity with a watch open ending in exit 0.
set -uo pipefail
HVMMD=$(readlink -f server/hvmmd)
CTL_BIN=$(readlink -f client/hvmmctl)
dir=$(mktemp -d /tmp/hvmm-e2e-XXXXXX)
sock="$dir/s/hvmm.sock"
failures=0
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ctl() { "$CTL_BIN" --addr "unix:$sock" --timeout 20 "$@"; }
# expect_rc RC CMD...: runs hvmmctl, checks its exit code, keeps its output.
expect_rc() {
  local want=$1; shift
  out=$(ctl "$@" 2>"$dir/err"); rc=$?
  err=$(cat "$dir/err")
  [ "$rc" -eq "$want" ] || fail "hvmmctl $* exited $rc, want $want; stderr: $err"
}
# Waits until the daemon answers health (it logs once it serves).
wait_serving() {
  for _ in $(seq 1 600); do
    ctl health >/dev/null 2>&1 && return 0
    kill -0 "$daemon_pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

"$HVMMD" --metrics-addr=127.0.0.1:0 --listen="unix:$sock" --pcpus=2 --frames=16384 \
  --bookmark-seconds=1 >"$dir/hvmmd.log" 2>&1 &
daemon_pid=$!
wait_serving || { cat "$dir/hvmmd.log"; fail "the daemon did not come up"; exit 1; }

# Sockets: 0600 in a 0700 directory; a second daemon is refused.
[ "$(stat -c %a "$sock")" = 600 ] || fail "socket mode $(stat -c %a "$sock")"
[ "$(stat -c %a "$(dirname "$sock")")" = 700 ] || fail "directory mode"
[ "$(stat -c %a "${sock%.sock}-ro.sock")" = 600 ] || fail "read-only socket mode"
"$HVMMD" --metrics-addr=127.0.0.1:0 --listen="unix:$sock" --pcpus=1 --frames=64 >"$dir/second.log" 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "second daemon exited $rc, want 2"
grep -q "SOCKET_IN_USE" "$dir/second.log" || fail "second daemon: $(cat "$dir/second.log")"
expect_rc 0 health
[ "$out" = "hvmm.v1.MemoryManager: SERVING" ] || fail "health said: $out"

# Tables and JSON.
expect_rc 0 domain create web --vcpus 2 --max-pages 4096 --policy ipi
echo "$out" | head -1 | grep -q "^ID  NAME  VCPUS  PAGES  MAX   POLICY" ||
  fail "create table header: $out"
echo "$out" | sed -n 2p | grep -q "^1   web   2      1      4096  ipi " ||
  fail "create table row: $out"
expect_rc 0 pt map 1 0x40000000 64
[ "$out" = "64 pages mapped, 3 tables created" ] || fail "map: $out"
expect_rc 0 -o json domain get web
echo "$out" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)["domain"]
assert d["name"] == "web" and d["totPages"] == "68", d
assert d["policy"] == "FLUSH_POLICY_IPI", d' || fail "json: $out"
expect_rc 0 translate 1 0x40001010 --write
echo "$out" | sed -n 2p | grep -q "^OK " || fail "translate: $out"
# The listing carries the event revision to watch from (not 0).
expect_rc 0 -o json domain list
echo "$out" | /usr/bin/python3 -c 'import json, sys
r = json.load(sys.stdin)
assert int(r["revision"]) > 0, r
assert [d["name"] for d in r["domains"]] == ["web"], r' || fail "json list: $out"
expect_rc 0 -o json stats --domain 1
echo "$out" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["domains"] == 1 and s["frames"]["pageTables"] == "4", s' ||
  fail "stats json: $out"
expect_rc 0 audit
[ "$out" = "${out#clean}" ] && fail "audit: $out"

# Exit codes: a failed call is 1 with code, reason and message.
data_mfn=$(ctl -o json translate 1 0x40000000 | /usr/bin/python3 -c '
import json, sys; print(int(json.load(sys.stdin)["mfn"]))')
expect_rc 1 pt pin 1 "$data_mfn" --level l1
echo "$err" | grep -q "^hvmmctl: FAILED_PRECONDITION \[TYPE_CONFLICT\]: type conflict" ||
  fail "pin error: $err"
expect_rc 1 domain get 99
echo "$err" | grep -q "NOT_FOUND \[UNKNOWN_DOMAIN\]" || fail "get error: $err"
expect_rc 2 domain create
expect_rc 2 pt pin 1 0x5 --level l9
expect_rc 2 nosuchcommand
expect_rc 2 domain get 4294967297
expect_rc 2 domain destroy 4294967300
expect_rc 2 watch --since -1
expect_rc 2 --timeout nan stats
expect_rc 0 --help
echo "$out" | grep -q "3  health: the daemon is not serving" || fail "--help lacks exit codes"
# The read-only socket refuses changes.
out=$("$CTL_BIN" --addr "unix:${sock%.sock}-ro.sock" domain destroy 1 2>&1); rc=$?
[ "$rc" -eq 1 ] && echo "$out" | grep -q "PERMISSION_DENIED \[READ_ONLY_SOCKET\]" ||
  fail "read-only destroy: rc $rc $out"

# Watch sees what happens, and resumes after its stream ends.
"$CTL_BIN" --addr "unix:$sock" watch --kind domain_created \
  --kind domain_destroyed >"$dir/watch.out" 2>&1 &
watch_pid=$!
expect_rc 0 health  # (the watch connects meanwhile)
for _ in $(seq 1 200); do
  ctl domain create "w$RANDOM" --max-pages 16 >/dev/null 2>&1
  grep -q DOMAIN_CREATED "$dir/watch.out" && break
done
grep -q DOMAIN_CREATED "$dir/watch.out" || fail "watch saw no create: $(cat "$dir/watch.out")"

# Activity while SIGTERM arrives: a workload, a map loop, the open watch.
expect_rc 0 workload start 1 --range 0x40000000:64 --pattern zipf
( for i in $(seq 1 200); do ctl pt map 1 $((0x80000000 + i * 4096)) 1 >/dev/null 2>&1; done ) &
loop_pid=$!
kill -TERM "$daemon_pid"
wait "$daemon_pid"; rc=$?
daemon_pid=""
[ "$rc" -eq 0 ] || fail "hvmmd exited $rc after SIGTERM: $(tail -5 "$dir/hvmmd.log")"
grep -q "audit passed" "$dir/hvmmd.log" || fail "no clean shutdown: $(tail -3 "$dir/hvmmd.log")"
wait "$loop_pid"
expect_rc 3 health
kill -INT "$watch_pid" 2>/dev/null
wait "$watch_pid"; rc=$?
[ "$rc" -eq 0 ] || fail "watch exited $rc on Ctrl-C"

# A stale socket whose lock is free is replaced.
[ -e "$sock" ] || : >"$sock"
"$HVMMD" --metrics-addr=127.0.0.1:0 --listen="unix:$sock" --pcpus=1 --frames=64 >"$dir/third.log" 2>&1 &
daemon_pid=$!
wait_serving || fail "a stale socket blocked the next daemon: $(cat "$dir/third.log")"
kill -TERM "$daemon_pid"; wait "$daemon_pid"; daemon_pid=""

if [ "$failures" -ne 0 ]; then
  echo "cli_test: $failures failure(s)"
  exit 1
fi
echo "cli_test: ok"
