#!/usr/bin/env bash
# The full test suite, as CI runs it: install -> build -> test -> summary.
#
# Usage: tools/test.sh
#   HVMM_SANITIZERS=0 tools/test.sh   skips the ASan/TSan/clang passes (quicker)
#
# Passes:
#   1. bazel test //...                          every test, optimized build
#   2. bazel test --config=asan <core targets>   AddressSanitizer
#   3. bazel test --config=tsan <core targets>   ThreadSanitizer
#   4. bazel test --config=tsa //...             clang, -Werror=thread-safety:
#                                                the lock contracts are checked
#                                                at compile time, and every test
#                                                runs on the clang build. In an
#                                                output base of its own
#                                                (HVMM_TSA_OUTPUT_BASE), so the
#                                                compiler switch never discards
#                                                the gcc builds.
# The core targets (mm, flush, assembly, cpu, grace, guest) link no gRPC: uninstrumented
# system gRPC (and Abseil's mutexes) make TSan report false races. So TSan
# runs the core and the daemon's Host (//server:host_test, no gRPC); ASan
# also runs the service and the integration tests.
#
# Ends with a line of its own, "N passed, N failed", counting test cases over
# all passes (GoogleTest cases from each target's test.xml; a target that
# failed to build or produced no results counts as one failure). Exits
# non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

SANITIZER_TARGETS=(//base/... //mm/... //flush/... //assembly/... //cpu/... //grace/... //guest/... //tests/safety/... //tests/torture/... //server:host_test //server:host_metrics_test)
ASAN_ONLY_TARGETS=(//server/... //tests/integration/...)

bash tools/install_deps.sh || { echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary_args=()
overall_rc=0

# The clang pass's own Bazel server and cache, one per checkout (an output
# base belongs to one workspace).
TSA_BAZEL=(bazel "--output_base=${HVMM_TSA_OUTPUT_BASE:-$HOME/.cache/hvmm-tsa/$(pwd | md5sum | cut -c1-12)}")
BAZEL=(bazel)

# run_pass NAME [bazel test args...]; BAZEL (an array) is the bazel command.
run_pass() {
  local name=$1
  shift
  local bazel_cmd=("${BAZEL[@]}")
  echo "=== tools/test.sh: pass '$name': ${bazel_cmd[*]} test $*"
  "${bazel_cmd[@]}" test --keep_going --test_summary=short "$@" 2>&1 |
    tee "$work/$name.log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    overall_rc=1
    # A pass that failed with no failing test to show for it (a library or
    # binary that did not compile, say a thread-safety error) still counts.
    grep -qE '^//\S+\s+(\(cached\)\s+)?(FAILED|TIMEOUT|NO STATUS|INCOMPLETE)' \
      "$work/$name.log" ||
      echo "//:pass_$name FAILED TO BUILD (bazel exit $rc)" >> "$work/$name.log"
  fi
  # Passes may share a testlogs directory (asan and tsan are both k8-dbg):
  # keep this pass's results before the next one overwrites them.
  local configs=() arg testlogs
  for arg in "$@"; do [[ $arg == --config=* ]] && configs+=("$arg"); done
  testlogs=$("${bazel_cmd[@]}" info "${configs[@]}" bazel-testlogs 2>/dev/null)
  mkdir -p "$work/$name.testlogs"
  [ -d "$testlogs" ] && cp -rL "$testlogs/." "$work/$name.testlogs/" 2>/dev/null
  summary_args+=("$work/$name.log" "$work/$name.testlogs")
}

run_pass all //...
if [ "${HVMM_SANITIZERS:-1}" != "0" ]; then
  run_pass asan --config=asan "${SANITIZER_TARGETS[@]}" "${ASAN_ONLY_TARGETS[@]}"
  run_pass tsan --config=tsan "${SANITIZER_TARGETS[@]}"
  # One Bazel server at a time on a 2-core machine.
  bazel shutdown >/dev/null 2>&1
  # Every top-level package by name, not //...: this server does not know
  # the first one's convenience symlinks (bazel-<checkout>) and would load
  # the packages behind them.
  tsa_targets=(//:all)
  for dir in */; do
    dir=${dir%/}
    [ -L "$dir" ] && continue
    grep -qxF "$dir" .bazelignore 2>/dev/null && continue
    [ -n "$(find "$dir" -name BUILD -print -quit)" ] && tsa_targets+=("//$dir/...")
  done
  BAZEL=("${TSA_BAZEL[@]}")
  run_pass tsa --config=tsa --symlink_prefix=/ "${tsa_targets[@]}"
  BAZEL=(bazel)
  "${TSA_BAZEL[@]}" shutdown >/dev/null 2>&1
fi

if [ "${CI:-}" = "true" ]; then bazel shutdown >/dev/null 2>&1; fi

python3 tools/summarize_tests.py "${summary_args[@]}" || overall_rc=1
exit "$overall_rc"
