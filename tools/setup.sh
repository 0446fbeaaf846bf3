#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build recstore.
# RocksDB's Rust bindings run bindgen, which needs libclang, and compile
# RocksDB's C++ sources, which need a C++20 compiler (clang or g++ >= 11).
set -euo pipefail

need=()
for pkg in clang libclang-dev g++; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "tools/setup.sh: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || { echo "tools/setup.sh: cargo not found; install Rust (rustup) first" >&2; exit 1; }
