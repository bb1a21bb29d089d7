#!/usr/bin/env bash
# The structure of deploy/ (deploy_check.py says what it checks).
set -uo pipefail
DEPLOY=$(cd "$(dirname "$(readlink -f deploy/kubernetes/hvmmd.yaml)")/.." && pwd)
dir=$(mktemp -d /tmp/hvmm-deploy-XXXXXX)
trap 'rm -rf "$dir"' EXIT
command -v yamllint >/dev/null || { echo "FAIL: yamllint missing (Debian package yamllint)"; exit 1; }
exec /usr/bin/python3 "$(dirname "$0")/deploy_check.py" "$DEPLOY" \
  "$(readlink -f docs/runbook.md)" "$(readlink -f server/build_info.h)" \
  "$(readlink -f server/hvmmd)" "$dir"
