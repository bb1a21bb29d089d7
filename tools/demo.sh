#!/usr/bin/env bash
# The demo, from a fresh Debian 12 machine: installs what is missing,
# builds hvmmd, and runs `hvmmd --demo` (about 30 s; Ctrl-C ends it).
#
# Usage: tools/demo.sh [hvmmd flags...]
#   tools/demo.sh --demo-seconds=3                  shorter phases
#   tools/demo.sh --demo-policy=assisted+rcu        one policy only
#   tools/demo.sh --listen=unix:/tmp/d/hvmm.sock --metrics-addr=127.0.0.1:0
# While it runs: bazel-bin/client/hvmmctl domain list, and
# curl -s http://127.0.0.1:9464/metrics (the addresses it logs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bazel build //server:hvmmd //client:hvmmctl
exec bazel-bin/server/hvmmd --demo "$@"
