#!/usr/bin/env bash
# buf lint over proto/ with the repository's buf.yaml (STANDARD rules).
# buf is installed by tools/install_deps.sh into third_party/npm; the test is
# tagged "local", and finds the workspace through its buf.yaml symlink.
set -euo pipefail
root=$(dirname "$(readlink -f buf.yaml)")
buf="$root/third_party/npm/node_modules/.bin/buf"
[ -x "$buf" ] || { echo "buf not installed: run tools/install_deps.sh"; exit 1; }
cd "$root"
"$buf" lint
echo "buf lint: clean ($("$buf" --version))"
