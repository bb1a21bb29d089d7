#!/usr/bin/env bash
# Runs hvmm_torture and checks its verdict.
#
# Usage: torture_test.sh BINARY EXPECT [torture flags...]
#   EXPECT = success     last line "hvmm-torture: SUCCESS", exit 0,
#                        0 violations, 0 leaked frames, and pipe buckets
#                        2..10 all zero
#            wrapped     as success, and the TLB clock is in a period > 0
#                        (it wrapped and a new period began)
#            violations  last line "hvmm-torture: FAILURE (...)", exit 1, and
#                        the oracle counted violations (the oracle can fail)
#                        that the pipe histogram shows past bucket 1
#            unsafe_domains_only
#                        as violations, and "violations by policy" puts
#                        every one on assisted-unsafe domains: the domains
#                        under other policies in the same run have none
#            refused     FAILURE without running (assisted-unsafe not allowed)
set -uo pipefail
# Checks read the whole output (grep without -q): with pipefail, a reader
# that stops at its first match can fail the pipeline with SIGPIPE.
bin=$1
expect=$2
shift 2
out=$("$bin" "$@" 2>&1)
rc=$?
echo "$out"
last=$(printf '%s\n' "$out" | tail -n 1)
# "pipe: b0 b1 ... b10" -> the sum of buckets 2..10.
late_pipe=$(printf '%s\n' "$out" | awk '/^pipe:/ { s = 0; for (i = 4; i <= NF; i++) s += $i; print s }')
violations=$(printf '%s\n' "$out" | sed -n 's/^violations: existence \([0-9]*\)  coherence \([0-9]*\).*/\1 \2/p')

fail() { echo "torture_test: $*" >&2; exit 1; }

case "$expect" in
  success|wrapped)
    [ "$rc" -eq 0 ] || fail "exit code $rc, want 0"
    [ "$last" = "hvmm-torture: SUCCESS" ] || fail "last line '$last'"
    [ "$violations" = "0 0" ] || fail "violations '$violations'"
    printf '%s\n' "$out" | grep '^leaked frames: 0 ' >/dev/null || fail "leaked frames"
    [ "$late_pipe" = "0" ] || fail "pipe buckets >= 2 hold $late_pipe walks"
    if [ "$expect" = wrapped ]; then
      printf '%s\n' "$out" | grep -E 'tlb clock: period [1-9]' >/dev/null || fail "the TLB clock never began a new period"
    fi
    ;;
  violations|unsafe_domains_only)
    [ "$rc" -eq 1 ] || fail "exit code $rc, want 1"
    [[ "$last" == "hvmm-torture: FAILURE ("*")" ]] || fail "last line '$last'"
    read -r existence coherence <<<"$violations"
    [ $((existence + coherence)) -gt 0 ] || fail "no violations counted: the oracle is broken"
    if [ "$existence" -gt 0 ]; then
      [ "${late_pipe:-0}" -gt 0 ] || fail "existence violations but an empty pipe tail"
    fi
    if [ "$expect" = unsafe_domains_only ]; then
      by_policy=$(printf '%s\n' "$out" | sed -n 's/^violations by policy: //p')
      [ -n "$by_policy" ] || fail "no 'violations by policy' line"
      # Pairs "name count"; every non-unsafe count must be 0.
      set -- $by_policy
      unsafe=0
      while [ $# -ge 2 ]; do
        if [ "$1" = assisted-unsafe ]; then unsafe=$2
        elif [ "$2" != 0 ]; then fail "$2 violations on $1 domains"; fi
        shift 2
      done
      [ "$unsafe" -gt 0 ] || fail "no violations on the assisted-unsafe domains"
    fi
    ;;
  refused)
    [ "$rc" -eq 1 ] || fail "exit code $rc, want 1"
    [[ "$last" == "hvmm-torture: FAILURE (policy assisted-unsafe"* ]] || fail "last line '$last'"
    [ -z "$violations" ] || fail "it ran"
    ;;
  *) fail "unknown expectation $expect" ;;
esac
echo "torture_test: $expect as expected"
