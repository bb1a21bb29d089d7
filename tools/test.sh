#!/usr/bin/env bash
# The full test suite, as CI runs it: install -> build -> test -> summary.
#
# Usage: tools/test.sh
#   HVMM_SANITIZERS=0 tools/test.sh   skips the ASan/TSan passes (quicker)
#
# Passes:
#   1. bazel test //...                          every test, optimized build
#   2. bazel test --config=asan <core targets>   AddressSanitizer
#   3. bazel test --config=tsan <core targets>   ThreadSanitizer
# The core targets (mm, flush, cpu, grace, guest) link no gRPC: uninstrumented
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

SANITIZER_TARGETS=(//base/... //mm/... //flush/... //cpu/... //grace/... //guest/... //tests/safety/... //tests/torture/... //server:host_test //server:host_metrics_test)
ASAN_ONLY_TARGETS=(//server/... //tests/integration/...)

bash tools/install_deps.sh || { echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
summary_args=()
overall_rc=0

# run_pass NAME [bazel test args...]
run_pass() {
  local name=$1
  shift
  echo "=== tools/test.sh: pass '$name': bazel test $*"
  bazel test --keep_going --test_summary=short "$@" 2>&1 | tee "$work/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || overall_rc=1
  # Passes may share a testlogs directory (asan and tsan are both k8-dbg):
  # keep this pass's results before the next one overwrites them.
  local configs=() arg testlogs
  for arg in "$@"; do [[ $arg == --config=* ]] && configs+=("$arg"); done
  testlogs=$(bazel info "${configs[@]}" bazel-testlogs 2>/dev/null)
  mkdir -p "$work/$name.testlogs"
  [ -d "$testlogs" ] && cp -rL "$testlogs/." "$work/$name.testlogs/" 2>/dev/null
  summary_args+=("$work/$name.log" "$work/$name.testlogs")
}

run_pass all //...
if [ "${HVMM_SANITIZERS:-1}" != "0" ]; then
  run_pass asan --config=asan "${SANITIZER_TARGETS[@]}" "${ASAN_ONLY_TARGETS[@]}"
  run_pass tsan --config=tsan "${SANITIZER_TARGETS[@]}"
fi

if [ "${CI:-}" = "true" ]; then bazel shutdown >/dev/null 2>&1; fi

python3 tools/summarize_tests.py "${summary_args[@]}" || overall_rc=1
exit "$overall_rc"
