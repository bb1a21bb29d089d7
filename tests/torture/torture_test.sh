#!/usr/bin/env bash
# Runs hvmm_torture and checks its verdict.
#
# Usage: torture_test.sh BINARY EXPECT [torture flags...]
#   EXPECT = success     last line "hvmm-torture: SUCCESS", exit 0,
#                        0 violations, 0 leaked frames
#            violations  last line "hvmm-torture: FAILURE (...)", exit 1, and
#                        the oracle counted violations (the oracle can fail)
#            refused     FAILURE without running (assisted-unsafe not allowed)
set -uo pipefail
bin=$1
expect=$2
shift 2
out=$("$bin" "$@" 2>&1)
rc=$?
echo "$out"
last=$(printf '%s\n' "$out" | tail -n 1)
violations=$(printf '%s\n' "$out" | sed -n 's/^violations: existence \([0-9]*\)  coherence \([0-9]*\).*/\1 \2/p')

fail() { echo "torture_test: $*" >&2; exit 1; }

case "$expect" in
  success)
    [ "$rc" -eq 0 ] || fail "exit code $rc, want 0"
    [ "$last" = "hvmm-torture: SUCCESS" ] || fail "last line '$last'"
    [ "$violations" = "0 0" ] || fail "violations '$violations'"
    printf '%s\n' "$out" | grep -q '^leaked frames: 0 ' || fail "leaked frames"
    ;;
  violations)
    [ "$rc" -eq 1 ] || fail "exit code $rc, want 1"
    [[ "$last" == "hvmm-torture: FAILURE ("*")" ]] || fail "last line '$last'"
    read -r existence coherence <<<"$violations"
    [ $((existence + coherence)) -gt 0 ] || fail "no violations counted: the oracle is broken"
    ;;
  refused)
    [ "$rc" -eq 1 ] || fail "exit code $rc, want 1"
    [[ "$last" == "hvmm-torture: FAILURE (policy assisted-unsafe"* ]] || fail "last line '$last'"
    [ -z "$violations" ] || fail "it ran"
    ;;
  *) fail "unknown expectation $expect" ;;
esac
echo "torture_test: $expect as expected"
