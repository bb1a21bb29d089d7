#!/usr/bin/env bash
# Checks that summarize_tests.py counts cases from test.xml, counts a target
# without results as one failure, and exits non-zero when anything failed.
set -euo pipefail
script="$(dirname "$0")/summarize_tests.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/logs/a/b" "$tmp/logs/c/d"
cat > "$tmp/logs/a/b/test.xml" <<'XML'
<testsuites><testsuite>
  <testcase name="x" status="run"/>
  <testcase name="y" status="run"><failure message="boom"/></testcase>
  <testcase name="z" status="run"/>
  <testcase name="skipped" status="notrun"/>
</testsuite></testsuites>
XML
cat > "$tmp/logs/c/d/test.xml" <<'XML'
<testsuites><testsuite>
  <testcase name="p" status="run"/><testcase name="q" status="run"/>
</testsuite></testsuites>
XML
cat > "$tmp/out.log" <<'LOG'
INFO: noise
//a:b                                                   FAILED in 0.1s
//c:d                                          (cached) PASSED in 0.1s
//e:f                                          FAILED TO BUILD
Executed 2 out of 3 tests: 1 test passes and 2 fail locally.
LOG

set +e
got=$(python3 "$script" "$tmp/out.log" "$tmp/logs")
rc=$?
set -e
[ "$got" = "4 passed, 2 failed" ] || { echo "got '$got'"; exit 1; }
[ "$rc" -eq 1 ] || { echo "exit code $rc, want 1"; exit 1; }

# All green: exit 0.
grep -v -e "//a:b" -e "//e:f" "$tmp/out.log" > "$tmp/green.log"
got=$(python3 "$script" "$tmp/green.log" "$tmp/logs")
[ "$got" = "2 passed, 0 failed" ] || { echo "got '$got'"; exit 1; }

# Several runs add up.
got=$(python3 "$script" "$tmp/green.log" "$tmp/logs" "$tmp/green.log" "$tmp/logs")
[ "$got" = "4 passed, 0 failed" ] || { echo "got '$got'"; exit 1; }

# No test at all is a failure, not a pass.
echo "nothing" > "$tmp/empty.log"
if python3 "$script" "$tmp/empty.log" "$tmp/logs" >/dev/null; then
  echo "no tests must fail"; exit 1
fi
echo "summarize_tests_test: ok"
