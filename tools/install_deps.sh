#!/usr/bin/env bash
# Installs the Debian packages hvmm builds and tests with. Idempotent: when
# every package is already installed it prints nothing and changes nothing.
#
# Usage: tools/install_deps.sh        (as root, or with sudo available)
set -euo pipefail

PACKAGES=(
  bazel-bootstrap
  g++
  pkg-config
  python3
  libabsl-dev
  libgrpc++-dev
  protobuf-compiler-grpc
  libprotobuf-dev
  protobuf-compiler
  prometheus-cpp-dev
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  python3-grpcio
  python3-protobuf
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_deps: done"
