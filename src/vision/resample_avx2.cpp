// AVX2 versions of resample.cpp's bicubic passes (compiled with -mavx2; resample.cpp calls them
// only when the CPU has AVX2). Same bytes as the scalar passes: every output is the same sum of the
// same int32 products (pixel * coefficient, in 32-bit lanes, _mm256_mullo_epi32 and
// _mm256_add_epi32), started at 1 << 21, shifted right by 22 and clamped to 0..255 (the saturating
// packs). Only the order of the additions differs, and int32 addition is associative.
//
//  * vertical: 8 bytes of a row at a time, widened to int32, times the broadcast coefficient of
//    each tap; 32 bytes per step (4 accumulators), then 8, then a scalar tail.
//  * horizontal: 8 rows at a time. The bytes the outputs read are transposed into a buffer T with
//    T[column * 8 + row], so that one 8-byte load gives a source byte of all 8 rows and one output
//    (x, channel) is 8 lanes that all use the same coefficient, as in the vertical pass. The
//    results are transposed back. A last block of fewer than 8 rows repeats its last row in the
//    spare lanes and writes them to a scratch row.
#include "vision/resample_detail.h"

#if defined(BGEVL_RESAMPLE_AVX2)

#if !defined(__AVX2__)
#error "resample_avx2.cpp must be compiled with -mavx2 (CMakeLists.txt)"
#endif

#include <immintrin.h>

#include <algorithm>
#include <vector>

namespace bgevl::vision::avx2 {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

inline uint8_t clip8(int32_t ss) {
  const int32_t v = ss >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// 8 int32 sums -> 8 bytes (shift, then clamp to 0..255 by the saturating packs).
inline __m128i pack8(__m256i acc) {
  const __m256i v = _mm256_srai_epi32(acc, kPrecisionBits);
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_packus_epi16(w, w);
}

// 4 x 8 int32 sums -> 32 bytes in order.
inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(_mm256_srai_epi32(a, kPrecisionBits),
                                        _mm256_srai_epi32(b, kPrecisionBits));
  const __m256i cd = _mm256_packs_epi32(_mm256_srai_epi32(c, kPrecisionBits),
                                        _mm256_srai_epi32(d, kPrecisionBits));
  // [a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7] -> a0-7 b0-7 c0-7 d0-7
  return _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd),
                                     _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline __m256i widen8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

inline __m256i mac(__m256i acc, const uint8_t* p, __m256i k) {
  return _mm256_add_epi32(acc, _mm256_mullo_epi32(widen8(p), k));
}

// T[j * 8 + r] = rows[r][j] for j < n.
void transpose_in(const uint8_t* const rows[8], size_t n, uint8_t* T) {
  size_t j = 0;
  for (; j + 16 <= n; j += 16, T += 128) {
    __m128i a[8];
    for (int r = 0; r < 8; ++r)
      a[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] + j));
    __m128i b[8], c[8];
    for (int r = 0; r < 4; ++r) {
      b[2 * r] = _mm_unpacklo_epi8(a[2 * r], a[2 * r + 1]);      // rows 2r, 2r+1; columns 0-7
      b[2 * r + 1] = _mm_unpackhi_epi8(a[2 * r], a[2 * r + 1]);  // columns 8-15
    }
    for (int h = 0; h < 2; ++h) {                             // h: columns 0-7 or 8-15
      c[4 * h + 0] = _mm_unpacklo_epi16(b[h], b[2 + h]);      // rows 0-3, columns 8h+0..3
      c[4 * h + 1] = _mm_unpackhi_epi16(b[h], b[2 + h]);      // rows 0-3, columns 8h+4..7
      c[4 * h + 2] = _mm_unpacklo_epi16(b[4 + h], b[6 + h]);  // rows 4-7, columns 8h+0..3
      c[4 * h + 3] = _mm_unpackhi_epi16(b[4 + h], b[6 + h]);  // rows 4-7, columns 8h+4..7
    }
    for (int h = 0; h < 2; ++h)
      for (int q = 0; q < 2; ++q) {  // q: columns 8h+4q .. 8h+4q+3
        __m128i* o = reinterpret_cast<__m128i*>(T + (8 * h + 4 * q) * 8);
        _mm_storeu_si128(o, _mm_unpacklo_epi32(c[4 * h + q], c[4 * h + 2 + q]));
        _mm_storeu_si128(o + 1, _mm_unpackhi_epi32(c[4 * h + q], c[4 * h + 2 + q]));
      }
  }
  for (; j < n; ++j, T += 8)
    for (int r = 0; r < 8; ++r) T[r] = rows[r][j];
}

// dst[r][j] = U[j * 8 + r] for j < n.
void transpose_out(const uint8_t* U, size_t n, uint8_t* const dst[8]) {
  const __m128i il = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  size_t j = 0;
  for (; j + 8 <= n; j += 8, U += 64) {
    // a[q] = columns 2q, 2q+1 (8 rows each), interleaved: [c2q r0, c2q+1 r0, c2q r1, ...]
    __m128i a[4];
    for (int q = 0; q < 4; ++q)
      a[q] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(U + 16 * q)), il);
    const __m128i b0 = _mm_unpacklo_epi16(a[0], a[1]);  // columns 0-3 of rows 0-3
    const __m128i b1 = _mm_unpackhi_epi16(a[0], a[1]);  // columns 0-3 of rows 4-7
    const __m128i b2 = _mm_unpacklo_epi16(a[2], a[3]);  // columns 4-7 of rows 0-3
    const __m128i b3 = _mm_unpackhi_epi16(a[2], a[3]);  // columns 4-7 of rows 4-7
    const __m128i r01 = _mm_unpacklo_epi32(b0, b2), r23 = _mm_unpackhi_epi32(b0, b2);
    const __m128i r45 = _mm_unpacklo_epi32(b1, b3), r67 = _mm_unpackhi_epi32(b1, b3);
    const __m128i rr[4] = {r01, r23, r45, r67};
    for (int q = 0; q < 4; ++q) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst[2 * q] + j), rr[q]);
      _mm_storeh_pd(reinterpret_cast<double*>(dst[2 * q + 1] + j), _mm_castsi128_pd(rr[q]));
    }
  }
  for (; j < n; ++j, U += 8)
    for (int r = 0; r < 8; ++r) dst[r][j] = U[r];
}

// One block of 8 rows: T holds the source columns [sx0, ...) transposed; U receives the outputs
// transposed (U[(xx * C + c) * 8 + r]).
template <int C>
void horizontal_block(const uint8_t* T, int sx0, const ResampleCoeffs& cx, int x0, int nx,
                      uint8_t* U) {
  const int ksize = cx.ksize;
  const __m256i init = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  for (int xx = 0; xx < nx; ++xx, U += C * 8) {
    const int ox = x0 + xx;
    const int xmin = cx.bounds[2 * ox];
    const int xmax = cx.bounds[2 * ox + 1];
    const int32_t* k = &cx.kk[size_t(ox) * ksize];
    const uint8_t* s = T + size_t(xmin - sx0) * C * 8;
    __m256i acc[C];
    for (int c = 0; c < C; ++c) acc[c] = init;
    for (int x = 0; x < xmax; ++x, s += C * 8) {
      const __m256i kv = _mm256_set1_epi32(k[x]);
      for (int c = 0; c < C; ++c) acc[c] = mac(acc[c], s + c * 8, kv);
    }
    if constexpr (C == 4) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(U), pack32(acc[0], acc[1], acc[2], acc[3]));
    } else {
      for (int c = 0; c < C; ++c)
        _mm_storel_epi64(reinterpret_cast<__m128i*>(U + c * 8), pack8(acc[c]));
    }
  }
}

template <int C>
void horizontal_pass_t(const uint8_t* in, int in_w, int row0, int rows, const ResampleCoeffs& cx,
                       int x0, int nx, uint8_t* out) {
  // The source columns the outputs x0 .. x0+nx-1 read (bounds are monotonic).
  const int sx0 = cx.bounds[2 * x0];
  const int sx1 = cx.bounds[2 * (x0 + nx - 1)] + cx.bounds[2 * (x0 + nx - 1) + 1];
  const size_t in_len = size_t(sx1 - sx0) * C, out_len = size_t(nx) * C;
  thread_local std::vector<uint8_t> T, U, spare;
  T.resize(in_len * 8);
  U.resize(out_len * 8);
  spare.resize(out_len);
  for (int y = 0; y < rows; y += 8) {
    const int n = std::min(8, rows - y);
    const uint8_t* src[8];
    uint8_t* dst[8];
    for (int r = 0; r < 8; ++r) {
      const int rr = std::min(r, n - 1);
      src[r] = in + (size_t(row0 + y + rr) * size_t(in_w) + size_t(sx0)) * C;
      dst[r] = r < n ? out + size_t(y + r) * out_len : spare.data();
    }
    transpose_in(src, in_len, T.data());
    horizontal_block<C>(T.data(), sx0, cx, x0, nx, U.data());
    transpose_out(U.data(), out_len, dst);
  }
}

}  // namespace

void horizontal_pass(const uint8_t* in, int in_w, int channels, int row0, int rows,
                     const ResampleCoeffs& cx, int x0, int nx, uint8_t* out) {
  if (rows <= 0 || nx <= 0) return;
  switch (channels) {
    case 1:
      return horizontal_pass_t<1>(in, in_w, row0, rows, cx, x0, nx, out);
    case 2:
      return horizontal_pass_t<2>(in, in_w, row0, rows, cx, x0, nx, out);
    case 3:
      return horizontal_pass_t<3>(in, in_w, row0, rows, cx, x0, nx, out);
    case 4:
      return horizontal_pass_t<4>(in, in_w, row0, rows, cx, x0, nx, out);
    default:
      return;  // resample.cpp checks the channel count first
  }
}

void vertical_pass(const uint8_t* in, size_t in_stride, size_t in_offset, int src_row0,
                   size_t row_len, const ResampleCoeffs& cy, int y0, int ny, uint8_t* out,
                   size_t out_stride) {
  const int ksize = cy.ksize;
  thread_local std::vector<const uint8_t*> src;
  src.resize(size_t(ksize));
  const __m256i init = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  for (int yy = 0; yy < ny; ++yy) {
    const int oy = y0 + yy;
    const int ymin = cy.bounds[2 * oy];
    const int ymax = cy.bounds[2 * oy + 1];
    const int32_t* k = &cy.kk[size_t(oy) * ksize];
    for (int y = 0; y < ymax; ++y)
      src[size_t(y)] = in + size_t(ymin + y - src_row0) * in_stride + in_offset;
    const uint8_t* const* s = src.data();
    uint8_t* dst = out + size_t(yy) * out_stride;
    size_t i = 0;
    for (; i + 32 <= row_len; i += 32) {
      __m256i a0 = init, a1 = init, a2 = init, a3 = init;
      for (int y = 0; y < ymax; ++y) {
        const __m256i kv = _mm256_set1_epi32(k[y]);
        const uint8_t* p = s[y] + i;
        a0 = mac(a0, p, kv);
        a1 = mac(a1, p + 8, kv);
        a2 = mac(a2, p + 16, kv);
        a3 = mac(a3, p + 24, kv);
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), pack32(a0, a1, a2, a3));
    }
    for (; i + 8 <= row_len; i += 8) {
      __m256i a = init;
      for (int y = 0; y < ymax; ++y) a = mac(a, s[y] + i, _mm256_set1_epi32(k[y]));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + i), pack8(a));
    }
    for (; i < row_len; ++i) {
      int32_t ss = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y) ss += int32_t(s[y][i]) * k[y];
      dst[i] = clip8(ss);
    }
  }
}

}  // namespace bgevl::vision::avx2

#endif  // BGEVL_RESAMPLE_AVX2
