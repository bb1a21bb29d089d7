#!/usr/bin/env bash
# Installs the Debian packages hvmm builds and tests with. Idempotent: when
# every package is already installed it prints nothing and changes nothing.
#
# Usage: tools/install_deps.sh        (as root, or with sudo available)
set -euo pipefail

PACKAGES=(
  bazel-bootstrap
  g++
  clang
  liburcu-dev
  gnuplot-nox
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
  grpc-proto
  libcli11-dev
  libspdlog-dev
  libsystemd-dev
  openssl
  curl
  systemd
  prometheus
  yamllint
  python3-yaml
)

# buf (proto lint) comes from npm, pinned, into third_party/npm (ignored by
# git and Bazel). No lock file: the version is pinned here.
BUF_VERSION=1.75.0
# (Resolved through symlinks: tests run this script from Bazel's runfiles.)
NPM_PREFIX="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)/third_party/npm"
BUF="$NPM_PREFIX/node_modules/.bin/buf"

install_buf() {
  [ -x "$BUF" ] && [ "$("$BUF" --version 2>/dev/null)" = "$BUF_VERSION" ] && return 0
  echo "install_deps: installing buf $BUF_VERSION (npm @bufbuild/buf)"
  mkdir -p "$NPM_PREFIX"
  npm install --prefix "$NPM_PREFIX" --no-package-lock --no-save --no-audit \
    --no-fund --silent "@bufbuild/buf@$BUF_VERSION" >/dev/null
  [ "$("$BUF" --version 2>/dev/null)" = "$BUF_VERSION" ] ||
    { echo "install_deps: buf $BUF_VERSION did not install" >&2; exit 1; }
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm may come with a nodejs package of another origin; Debian's npm only
# when there is none.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  install_buf
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_buf
echo "install_deps: done"
