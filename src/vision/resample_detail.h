// Internals of the Pillow-exact resampler shared by resample.cpp and clip_processor.cpp (and the
// tests). Not part of the public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace bgevl::vision {

// Resample.c's precompute_coeffs for BICUBIC over the whole axis (box 0..in_size), already in
// 22-bit fixed point (normalize_coeffs_8bpc). Output position o reads the source positions
// bounds[2o] .. bounds[2o] + bounds[2o+1] - 1 with weights kk[o * ksize + i].
struct ResampleCoeffs {
  int ksize = 0;
  std::vector<int> bounds;
  std::vector<int32_t> kk;
};
ResampleCoeffs precompute_bicubic_coeffs(int in_size, int out_size);

// ImagingResample(BICUBIC) of an interleaved 8-bit image (no premultiplication, no mode logic),
// computing only the output window [x0, x0+nx) x [y0, y0+ny) of the out_w x out_h result; every
// output byte equals the one a full resize gives. `out` receives ny rows of nx * channels bytes,
// `out_stride` bytes apart. Horizontal pass only if the width changes, vertical only if the height
// changes, uint8 rounding in between, as Pillow.
void resize_bicubic_window(const uint8_t* in, int in_w, int in_h, int channels, int out_w,
                           int out_h, int x0, int y0, int nx, int ny, uint8_t* out,
                           size_t out_stride);

}  // namespace bgevl::vision
