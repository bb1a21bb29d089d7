#!/bin/sh
echo "remote_coverage_tools: coverage is not available in hvmm's offline build" >&2
exit 1
