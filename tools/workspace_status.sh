#!/usr/bin/env bash
# Bazel's --workspace_status_command: the revision hvmm_build_info reports.
# A checkout with local changes reads "<commit>-dirty"; a tree without git
# history reads "unknown".
rev=$(git rev-parse --short=12 HEAD 2>/dev/null) || rev=unknown
if [ "$rev" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then
  rev="$rev-dirty"
fi
echo "STABLE_HVMM_REVISION $rev"
