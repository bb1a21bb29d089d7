#!/usr/bin/env bash
# Generates the Python stubs the client needs into OUTDIR:
#   OUTDIR/hvmm/v1/hvmm_pb2.py, hvmm_pb2_grpc.py        (proto/hvmm/v1)
#   OUTDIR/hvmm_health/v1/health_pb2.py, health_pb2_grpc.py
#   OUTDIR/hvmm_reflection/v1alpha/reflection_pb2.py, reflection_pb2_grpc.py
# The health and reflection stubs come from Debian's grpc-proto package.
# Their protos are compiled as hvmm_health/... and hvmm_reflection/... so
# that the modules do not clash with the `grpc` package (Debian ships no
# grpc_health or grpc_reflection module); on the wire the services are
# still grpc.health.v1.Health and grpc.reflection.v1alpha.ServerReflection.
#
# Usage: client/python/generate_stubs.sh [OUTDIR [HVMM_PROTO]]
#   (default OUTDIR: client/python/gen, ignored by git)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/gen}
proto=${2:-$here/../../proto/hvmm/v1/hvmm.proto}
health=/usr/share/grpc-proto/grpc/health/v1/health.proto
reflection=/usr/share/grpc-proto/grpc/reflection/v1alpha/reflection.proto
[ -f "$health" ] || { echo "missing $health: install grpc-proto (tools/install_deps.sh)" >&2; exit 1; }
plugin=$(command -v grpc_python_plugin) ||
  { echo "missing grpc_python_plugin: install protobuf-compiler-grpc" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/hvmm/v1" "$tmp/hvmm_health/v1" "$tmp/hvmm_reflection/v1alpha"
cp "$proto" "$tmp/hvmm/v1/hvmm.proto"
cp "$health" "$tmp/hvmm_health/v1/health.proto"
cp "$reflection" "$tmp/hvmm_reflection/v1alpha/reflection.proto"
protoc --proto_path="$tmp" --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$plugin" \
  hvmm/v1/hvmm.proto hvmm_health/v1/health.proto \
  hvmm_reflection/v1alpha/reflection.proto
