#!/usr/bin/env bash
# deploy/prometheus: promtool checks the config and the rules and runs the
# rules' unit tests; then a real Prometheus scrapes a busy hvmmd and answers
# every dashboard query (prometheus_check.py).
set -uo pipefail
DEPLOY=$(dirname "$(readlink -f deploy/prometheus/prometheus.yml)")/..
DEPLOY=$(cd "$DEPLOY" && pwd)
dir=$(mktemp -d /tmp/hvmm-prom-XXXXXX)
trap 'rm -rf "$dir"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
command -v promtool >/dev/null && command -v prometheus >/dev/null ||
  { echo "FAIL: promtool/prometheus missing (Debian package prometheus)"; exit 1; }

# Bazel's runfiles are symlinks; promtool resolves rule files relative to
# the config, so check a copy.
cp "$DEPLOY/prometheus/"*.yml "$dir/"
(cd "$dir" && promtool check config prometheus.yml) || fail "promtool check config"
(cd "$dir" && promtool check rules alerts.yml) || fail "promtool check rules"
(cd "$dir" && promtool test rules alerts_test.yml) || fail "promtool test rules"

/usr/bin/python3 "$(dirname "$0")/prometheus_check.py" \
  "$(readlink -f server/hvmmd)" "$(readlink -f client/hvmmctl)" "$DEPLOY" "$dir" ||
  fail "a real Prometheus against hvmmd"
[ "$failures" -eq 0 ] || { echo "prometheus_test: $failures failures"; exit 1; }
echo "prometheus_test: ok"
