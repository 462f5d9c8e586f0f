#!/usr/bin/env bash
# The decoding of a build without OpenCV (the GPU build's configuration): configures build-noocv/
# with the torch-free layers only and -DBGEVL_WITH_OPENCV=OFF, builds their GoogleTest suite and
# runs the decoding and preprocessing tests: JPEG and PNG decode exactly as Pillow (libjpeg-turbo
# and libpng), BMP/WebP/TIFF are refused with a message that says OpenCV is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BGEVL_NOOCV_BUILD_DIR:-build-noocv}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBGEVL_TORCH_FREE_ONLY=ON -DBGEVL_BUILD_TESTS=ON \
  -DBGEVL_WITH_OPENCV=OFF "${launcher[@]}" >/dev/null
cmake --build "$BUILD" -j"${BGEVL_JOBS:-2}" --target bgevl_torchfree_tests
"$BUILD"/tests/bgevl_torchfree_tests \
  --gtest_filter='VisionDecode.MatchesPillowOpen:VisionDecode.JpegCmyk*:VisionDecode.Png*:VisionDecode.ExifOrientationIsNotApplied:Vision*Clip*:Vision*Resize*'
