#!/usr/bin/env bash
# Once the packages are installed (tools/test.sh installs them before running
# the tests), the install script must do nothing and say nothing.
set -euo pipefail
script="$(dirname "$0")/install_deps.sh"
out=$(bash "$script" 2>&1)
[ -z "$out" ] || { echo "install_deps.sh is not idempotent; it printed:"; echo "$out"; exit 1; }
echo "install_deps_test: ok"
