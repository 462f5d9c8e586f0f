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

// ---- SIMD dispatch ------------------------------------------------------------------------------
// The two passes have an AVX2 version (resample_avx2.cpp, x86-64 only) that gives the same bytes as
// the scalar one (the same int32 products and sums). It is used when the CPU has AVX2, unless the
// environment variable BGEVL_NO_SIMD is set to anything but "0" (read once).

// Whether the AVX2 passes are compiled in and the CPU (and OS) support them.
bool simd_available();
// Whether resize_bicubic_window uses them now.
bool simd_enabled();
// For the tests (and benchmarks): switch the AVX2 passes on (when available) or off, for all
// threads.
void set_simd_enabled(bool on);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BGEVL_RESAMPLE_AVX2 1
namespace avx2 {
// The AVX2 passes, with the arguments of resample.cpp's scalar horizontal_pass / vertical_pass:
// rows [row0, row0+rows) of the in_w-wide interleaved image -> outputs x0 .. x0+nx-1 of each,
// packed (nx * channels bytes per row) into out; channels 1..4.
void horizontal_pass(const uint8_t* in, int in_w, int channels, int row0, int rows,
                     const ResampleCoeffs& cx, int x0, int nx, uint8_t* out);
// Source row r (stride in_stride, starting in_offset bytes in) holds image row r + src_row0; output
// rows y0 .. y0+ny-1, row_len bytes each, out_stride apart.
void vertical_pass(const uint8_t* in, size_t in_stride, size_t in_offset, int src_row0,
                   size_t row_len, const ResampleCoeffs& cy, int y0, int ny, uint8_t* out,
                   size_t out_stride);
}  // namespace avx2
#endif

}  // namespace bgevl::vision
