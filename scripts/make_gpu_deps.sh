#!/usr/bin/env bash
# Packs what a bgevl build needs besides libtorch and pybind11 (ICU, nlohmann-json) from this
# Debian machine into .devdeps/gpu-deps.tar.xz, for a GPU machine that has CUDA PyTorch but not
# these -dev packages (the device machine of this workplace). Not needed on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
mkdir -p "$tmp/usr/lib" "$tmp/usr/include" "$tmp/usr/share/cmake" .devdeps
cp -a /usr/lib/x86_64-linux-gnu/libicu{uc,i18n,data}.so* "$tmp/usr/lib/"
cp -a /usr/include/unicode /usr/include/nlohmann "$tmp/usr/include/"
cp -a /usr/share/cmake/nlohmann_json "$tmp/usr/share/cmake/"
tar -C "$tmp" -cJf .devdeps/gpu-deps.tar.xz usr
rm -rf "$tmp"
ls -la .devdeps/gpu-deps.tar.xz
