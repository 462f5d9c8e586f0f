#!/usr/bin/env bash
# Packs what a bgevl build needs besides libtorch and pybind11 (ICU, nlohmann-json, and for
# `bgevl serve` cpp-httplib with the OpenSSL headers and Brotli libraries it was built with) from this
# Debian machine into .devdeps/gpu-deps.tar.xz, for a GPU machine that has CUDA PyTorch but not
# these -dev packages (the device machine of this workplace). Not needed on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
mkdir -p "$tmp/usr/lib" "$tmp/usr/include" "$tmp/usr/share/cmake" .devdeps
cp -a /usr/lib/x86_64-linux-gnu/libicu{uc,i18n,data}.so* "$tmp/usr/lib/"
cp -a /usr/include/unicode /usr/include/nlohmann "$tmp/usr/include/"
cp -a /usr/share/cmake/nlohmann_json "$tmp/usr/share/cmake/"
cp -a /usr/include/httplib.h /usr/include/openssl "$tmp/usr/include/"
cp -a /usr/include/x86_64-linux-gnu/openssl/* "$tmp/usr/include/openssl/"
cp -a /usr/lib/x86_64-linux-gnu/libcpp-httplib.so* /usr/lib/x86_64-linux-gnu/libbrotli{common,dec,enc}.so* "$tmp/usr/lib/"
tar -C "$tmp" -cJf .devdeps/gpu-deps.tar.xz usr
rm -rf "$tmp"
ls -la .devdeps/gpu-deps.tar.xz
