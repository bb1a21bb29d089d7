#!/usr/bin/env bash
# hvmmd --demo, short: every policy's phase runs, the table shows the bug
# (assisted-unsafe has violations) and no safe policy with any, the
# promise sentences say so, gRPC and /metrics serve the demo's domains
# while it runs, --demo-policy runs one phase, bad demo flags exit 2, and
# SIGINT cuts the demo short with a clean shutdown.
set -uo pipefail
HVMMD=$(readlink -f server/hvmmd)
CTL_BIN=$(readlink -f client/hvmmctl)
dir=$(mktemp -d /tmp/hvmm-demo-XXXXXX)
failures=0
daemon_pid=""
trap '[ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# demo NAME ARGS...: starts a demo in the background on its own socket.
demo() {
  local name=$1; shift
  sock="$dir/$name/hvmm.sock"
  "$HVMMD" --demo --listen="unix:$sock" --metrics-addr=127.0.0.1:0 \
    --pcpus=4 --frames=65536 "$@" >"$dir/$name.out" 2>&1 &
  daemon_pid=$!
}
# violations OUT LABEL: the violations column of LABEL's row in the table.
violations() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import re, sys
out, label = sys.argv[1], sys.argv[2]
for line in open(out):
    if line.startswith(label + " ") and "/s" not in line:
        m = re.search(r"\s(\d+)(  \(.*\))?$", line.rstrip("\n"))
        if m:
            print(m.group(1))
            break
PY
}

# 1. The whole demo, short phases.
demo full --demo-seconds=2
seen=""
for _ in $(seq 1 1200); do
  if "$CTL_BIN" --addr "unix:$sock" --timeout 10 domain list 2>/dev/null |
    grep -q ' demo-'; then
    seen=yes
    break
  fi
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$seen" ] || fail "hvmmctl never listed a demo domain while it ran"
url=$(sed -n 's|.*metrics on \(http://[^ ]*\)$|\1|p' "$dir/full.out")
if [ -n "$url" ] && kill -0 "$daemon_pid" 2>/dev/null; then
  curl -sf --max-time 10 "$url" | grep -q '^hvmm_walks_total ' ||
    fail "no hvmm_walks_total while the demo ran"
fi
wait "$daemon_pid"; rc=$?
daemon_pid=""
[ "$rc" -eq 0 ] || fail "demo exited $rc"
for policy in ipi assisted+force-ipi assisted+rcu; do
  grep -q "^== $policy: " "$dir/full.out" || fail "no $policy phase"
  grep -qE "^ +[0-9]+s ${policy//+/\\+} +walks .*violations 0$" "$dir/full.out" ||
    fail "no per-second line for $policy"
  v=$(violations "$dir/full.out" "$policy")
  [ "$v" = 0 ] || fail "$policy: violations '$v' in the table, want 0"
done
v=$(violations "$dir/full.out" "assisted-unsafe (the bug)")
[ -n "$v" ] && [ "$v" -gt 0 ] || fail "assisted-unsafe: violations '$v', want > 0"
grep -q "^Existence (.*): kept by ipi, assisted+force-ipi, assisted+rcu; broken by assisted-unsafe ([0-9]* violations)\.$" "$dir/full.out" ||
  fail "the existence sentence is missing or wrong"
grep -q "^Coherence (.*): kept by .*assisted+rcu" "$dir/full.out" ||
  fail "the coherence sentence is missing"
grep -q "^assisted+rcu kept both promises at " "$dir/full.out" ||
  fail "the closing comparison is missing"
grep -q "clean shutdown" "$dir/full.out" || fail "no clean shutdown after the demo"
[ "$failures" -eq 0 ] || cat "$dir/full.out"

# 2. One policy.
demo one --demo-policy=assisted+rcu --demo-seconds=1
wait "$daemon_pid"; rc=$?
daemon_pid=""
[ "$rc" -eq 0 ] || fail "--demo-policy run exited $rc"
[ "$(grep -c '^== ' "$dir/one.out")" -eq 1 ] || fail "--demo-policy ran more than one phase"
[ "$(violations "$dir/one.out" assisted+rcu)" = 0 ] || fail "one-policy table"

# 2b. A client destroying the demo's domains while it runs: served; the
# demo goes on or ends the phase early, prints its table, and exits 0 (no
# safe policy broke a promise).
demo destroyed --demo-policy=assisted+force-ipi --demo-seconds=3
destroys=0
while kill -0 "$daemon_pid" 2>/dev/null; do
  for id in $("$CTL_BIN" --addr "unix:$sock" --timeout 5 -o json domain list 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
for x in d.get("domains", []):
    if x.get("name", "").startswith("demo-"):
        print(x.get("id", x.get("domainId", "")))'); do
    "$CTL_BIN" --addr "unix:$sock" --timeout 5 domain destroy "$id" >/dev/null 2>&1 &&
      destroys=$((destroys + 1))
  done
  sleep 0.05
done
wait "$daemon_pid"; rc=$?
daemon_pid=""
[ "$rc" -eq 0 ] || { fail "demo under client destroys exited $rc"; tail -20 "$dir/destroyed.out"; }
grep -q "^assisted+force-ipi " "$dir/destroyed.out" || fail "no table row after client destroys"
echo "demo_test: a client destroyed $destroys demo domains during a phase"
[ "$destroys" -gt 0 ] || fail "the client destroyed no demo domain"

# 3. Bad demo flags.
"$HVMMD" --demo --demo-policy=bogus --listen="unix:$dir/b/h.sock" \
  --metrics-addr=none >"$dir/bad.out" 2>&1
[ $? -eq 2 ] || fail "--demo-policy=bogus did not exit 2"
"$HVMMD" --demo --demo-seconds=0 --listen="unix:$dir/b/h.sock" \
  --metrics-addr=none >"$dir/bad.out" 2>&1
[ $? -eq 2 ] || fail "--demo-seconds=0 did not exit 2"
"$HVMMD" --demo-policy=ipi --listen="unix:$dir/b/h.sock" \
  --metrics-addr=none >"$dir/bad.out" 2>&1
[ $? -eq 2 ] || fail "--demo-policy without --demo did not exit 2"

# 4. SIGINT during the first phase.
demo int --demo-seconds=60
for _ in $(seq 1 1200); do
  grep -qE '^ +1s ipi ' "$dir/int.out" && break
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.05
done
kill -INT "$daemon_pid"
wait "$daemon_pid"; rc=$?
daemon_pid=""
[ "$rc" -eq 0 ] || fail "SIGINT: exit $rc, want 0"
grep -q "(cut short)" "$dir/int.out" || fail "SIGINT: no cut-short row"
grep -q "^== assisted+force-ipi" "$dir/int.out" && fail "SIGINT: later phases ran"
grep -q "clean shutdown" "$dir/int.out" || fail "SIGINT: no clean shutdown"

[ "$failures" -eq 0 ] || { echo "demo_test: $failures failures"; exit 1; }
echo "demo_test: ok"
