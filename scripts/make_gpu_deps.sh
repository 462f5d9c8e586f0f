#!/usr/bin/env bash
# Packs what a bgevl build needs besides libtorch and pybind11 (ICU, nlohmann-json, libjpeg-turbo
# and libpng with zlib for JPEG/PNG decoding in C++, and for `bgevl serve` cpp-httplib with the OpenSSL headers and Brotli libraries it was built with) from this
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
# JPEG and PNG decoding (the GPU build decodes files in C++ exactly as the CPU build does)
cp -a /usr/include/jpeglib.h /usr/include/jerror.h /usr/include/jmorecfg.h \
  /usr/include/x86_64-linux-gnu/jconfig.h /usr/include/libpng16/png.h \
  /usr/include/libpng16/pngconf.h /usr/include/libpng16/pnglibconf.h /usr/include/zlib.h \
  /usr/include/zconf.h "$tmp/usr/include/"
cp -a /usr/lib/x86_64-linux-gnu/libjpeg.so* /usr/lib/x86_64-linux-gnu/libpng16.so* "$tmp/usr/lib/"
ln -sf libpng16.so "$tmp/usr/lib/libpng.so"
cp -a /lib/x86_64-linux-gnu/libz.so.1* "$tmp/usr/lib/"
ln -sf libz.so.1 "$tmp/usr/lib/libz.so"
cp -a /usr/lib/x86_64-linux-gnu/libcpp-httplib.so* /usr/lib/x86_64-linux-gnu/libbrotli{common,dec,enc}.so* "$tmp/usr/lib/"
# The real tokenizer files the benchmarks use (../shared/data, when present), beside the tarball.
SHARED=../shared/data/tokenizers
if [ -d "$SHARED" ]; then
  cp "$SHARED/mistral/tokenizer.model" .devdeps/tokenizer.model
  mkdir -p .devdeps/clip && cp "$SHARED/clip/vocab.json" "$SHARED/clip/merges.txt" .devdeps/clip/
fi
tar -C "$tmp" -cJf .devdeps/gpu-deps.tar.xz usr
rm -rf "$tmp"
ls -la .devdeps/gpu-deps.tar.xz
