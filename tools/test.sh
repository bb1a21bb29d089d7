#!/usr/bin/env bash
# The full test suite, as CI runs it: install -> build -> test -> summary.
#
# Usage: tools/test.sh [extra bazel test flags]
#   e.g. tools/test.sh --config=asan
#
# Ends with a line of its own, "N passed, N failed", counting test cases
# (GoogleTest cases from each target's test.xml; a target that failed to
# build or produced no results counts as one failure). Exits non-zero on any
# failure.
set -uo pipefail
cd "$(dirname "$0")/.."

bash tools/install_deps.sh || { echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT

bazel test //... --keep_going --test_summary=short "$@" 2>&1 | tee "$log"
bazel_rc=${PIPESTATUS[0]}

python3 tools/summarize_tests.py "$log" "$(bazel info bazel-testlogs 2>/dev/null)"
summary_rc=$?

if [ "${CI:-}" = "true" ]; then bazel shutdown >/dev/null 2>&1; fi

# 4 = build ok but no tests; anything else non-zero is a failure.
if [ "$bazel_rc" -ne 0 ] || [ "$summary_rc" -ne 0 ]; then exit 1; fi
exit 0
