// PIL-exact pixel operations: from_pixels, to_rgb (Pillow's Convert.c) and resize_bicubic
// (Pillow 9.4's Image.resize: src/libImaging/Resample.c for BICUBIC, Geometry.c's
// ImagingScaleAffine for the NEAREST that PIL uses on "P" and "1" images, and the premultiplied
// path for "LA" and "RGBA"). No libtorch, no OpenCV.
//
// Exactness notes:
//  * The filter coefficients are computed in double precision with the same expressions, in the
//    same order, as Resample.c, then turned into 22-bit fixed point as normalize_coeffs_8bpc does.
//    Floating-point contraction (FMA) is disabled for this file so that a -march with FMA cannot
//    change a coefficient by one ulp (Debian's Pillow is built without FMA).
//  * The passes accumulate in int32 exactly as Pillow (start value 1 << 21, clip to 0..255 after
//    an arithmetic shift by 22), so the output is identical byte for byte.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include "bgevl/errors.h"
#include "vision/image.h"
#include "vision/resample_detail.h"

namespace bgevl::vision {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // PRECISION_BITS in Resample.c

void check_image(const Image& im, const char* what) {
  BGEVL_CHECK_ARG(im.width > 0 && im.height > 0, what, ": empty image (", im.width, "x", im.height,
                  ")");
  BGEVL_CHECK_ARG(im.channels == channels_of(im.mode), what, ": image with ", im.channels,
                  " channels does not match its mode");
  BGEVL_CHECK_ARG(im.data.size() == size_t(im.width) * size_t(im.height) * size_t(im.channels),
                  what, ": pixel buffer holds ", im.data.size(), " bytes, expected ",
                  size_t(im.width) * size_t(im.height) * size_t(im.channels));
}

// Resample.c: bicubic_filter with a = -0.5.
inline double bicubic_filter(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

inline uint8_t clip8(int32_t ss) {
  // Pillow: clip8_lookups[ss >> PRECISION_BITS], a table for -640..639 that clamps to 0..255.
  const int32_t v = ss >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Pillow's MULDIV255 (ImagingUtils.h): (a * b + 127) / 255, rounded the way Pillow does.
inline unsigned muldiv255(unsigned a, unsigned b) {
  const unsigned tmp = a * b + 128;
  return ((tmp >> 8) + tmp) >> 8;
}

inline uint8_t clip8i(int v) { return static_cast<uint8_t>(v <= 0 ? 0 : (v < 256 ? v : 255)); }

// ---- SIMD dispatch -----------------------------------------------------------------------------

bool cpu_has_avx2() {
#if defined(BGEVL_RESAMPLE_AVX2)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

bool simd_disabled_by_env() {
  const char* v = std::getenv("BGEVL_NO_SIMD");
  return v != nullptr && v[0] != '\0' && !(v[0] == '0' && v[1] == '\0');
}

bool simd_available_once() {
  static const bool available = cpu_has_avx2();
  return available;
}

std::atomic<bool>& simd_flag() {
  static std::atomic<bool> flag{simd_available_once() && !simd_disabled_by_env()};
  return flag;
}

inline bool use_simd() { return simd_flag().load(std::memory_order_relaxed); }

// ---- bicubic passes --------------------------------------------------------------------------

template <int C>
void horizontal_pass_t(const uint8_t* in, int in_w, int row0, int rows, const ResampleCoeffs& cx,
                       int x0, int nx, uint8_t* out) {
  const int ksize = cx.ksize;
  for (int yy = 0; yy < rows; ++yy) {
    const uint8_t* src = in + size_t(row0 + yy) * size_t(in_w) * C;
    uint8_t* dst = out + size_t(yy) * size_t(nx) * C;
    for (int xx = 0; xx < nx; ++xx) {
      const int ox = x0 + xx;
      const int xmin = cx.bounds[2 * ox];
      const int xmax = cx.bounds[2 * ox + 1];
      const int32_t* k = &cx.kk[size_t(ox) * ksize];
      const uint8_t* s = src + size_t(xmin) * C;
      int32_t ss[C];
      for (int c = 0; c < C; ++c) ss[c] = 1 << (kPrecisionBits - 1);
      for (int x = 0; x < xmax; ++x) {
        const int32_t kv = k[x];
        for (int c = 0; c < C; ++c) ss[c] += int32_t(s[x * C + c]) * kv;
      }
      for (int c = 0; c < C; ++c) dst[xx * C + c] = clip8(ss[c]);
    }
  }
}

void horizontal_pass(const uint8_t* in, int in_w, int channels, int row0, int rows,
                     const ResampleCoeffs& cx, int x0, int nx, uint8_t* out) {
#if defined(BGEVL_RESAMPLE_AVX2)
  if (channels >= 1 && channels <= 4 && use_simd())
    return avx2::horizontal_pass(in, in_w, channels, row0, rows, cx, x0, nx, out);
#endif
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
      break;
  }
  throw InvalidArgumentError(detail::concat("resize: unsupported channel count ", channels));
}

// Vertical pass over a source whose row r holds source-image row (r + src_row0); produces the
// output rows y0 .. y0+ny-1, each `row_len` bytes wide (all channels interleaved; the vertical
// filter treats every byte of a row independently, as Pillow's per-band loops do).
void vertical_pass(const uint8_t* in, size_t in_stride, size_t in_offset, int src_row0,
                   size_t row_len, const ResampleCoeffs& cy, int y0, int ny, uint8_t* out,
                   size_t out_stride, std::vector<int32_t>& acc) {
#if defined(BGEVL_RESAMPLE_AVX2)
  if (use_simd())
    return avx2::vertical_pass(in, in_stride, in_offset, src_row0, row_len, cy, y0, ny, out,
                               out_stride);
#endif
  acc.resize(row_len);
  const int ksize = cy.ksize;
  for (int yy = 0; yy < ny; ++yy) {
    const int oy = y0 + yy;
    const int ymin = cy.bounds[2 * oy];
    const int ymax = cy.bounds[2 * oy + 1];
    const int32_t* k = &cy.kk[size_t(oy) * ksize];
    std::fill(acc.begin(), acc.end(), int32_t(1) << (kPrecisionBits - 1));
    int32_t* a = acc.data();
    for (int y = 0; y < ymax; ++y) {
      const uint8_t* src = in + size_t(ymin + y - src_row0) * in_stride + in_offset;
      const int32_t kv = k[y];
      for (size_t i = 0; i < row_len; ++i) a[i] += int32_t(src[i]) * kv;
    }
    uint8_t* dst = out + size_t(yy) * out_stride;
    for (size_t i = 0; i < row_len; ++i) dst[i] = clip8(a[i]);
  }
}

// A few coefficient tables per thread, keyed by (in_size, out_size): an embedding loop resizes
// many images to the same sizes, and the table for 640 -> 298 would be recomputed otherwise.
std::shared_ptr<const ResampleCoeffs> cached_coeffs(int in_size, int out_size) {
  struct Entry {
    int in = -1, out = -1;
    unsigned long stamp = 0;
    std::shared_ptr<const ResampleCoeffs> c;
  };
  constexpr int kEntries = 8;
  thread_local Entry cache[kEntries];
  thread_local unsigned long clock = 0;
  ++clock;
  Entry* victim = &cache[0];
  for (Entry& e : cache) {
    if (e.in == in_size && e.out == out_size) {
      e.stamp = clock;
      return e.c;
    }
    if (e.stamp < victim->stamp) victim = &e;
  }
  victim->c = std::make_shared<const ResampleCoeffs>(precompute_bicubic_coeffs(in_size, out_size));
  victim->in = in_size;
  victim->out = out_size;
  victim->stamp = clock;
  return victim->c;
}

// ---- nearest (Geometry.c, ImagingScaleAffine through _imaging.c's _resize) -------------------

Image resize_nearest(const Image& im, int width, int height) {
  const int C = im.channels;
  Image out;
  out.width = width;
  out.height = height;
  out.channels = C;
  out.mode = im.mode;
  out.data.assign(size_t(width) * size_t(height) * size_t(C), 0);  // fill = 1: zeroed first
  // a[0] = (box[2] - box[0]) / xsize with a float box; a[2] = a[5] = 0.
  const double a0 = double(float(im.width) - 0.0f) / width;
  const double a4 = double(float(im.height) - 0.0f) / height;
  std::vector<int> xintab(size_t(width), 0);
  int xmin = width, xmax = 0;
  double xo = 0.0 + a0 * 0.5;
  for (int x = 0; x < width; ++x) {
    const int xin = xo < 0.0 ? -1 : int(xo);  // COORD
    if (xin >= 0 && xin < im.width) {
      xmax = x + 1;
      if (x < xmin) xmin = x;
      xintab[size_t(x)] = xin;
    }
    xo += a0;
  }
  double yo = 0.0 + a4 * 0.5;
  for (int y = 0; y < height; ++y) {
    const int yi = yo < 0.0 ? -1 : int(yo);
    if (yi >= 0 && yi < im.height) {
      const uint8_t* src = im.data.data() + size_t(yi) * size_t(im.width) * C;
      uint8_t* dst = out.data.data() + size_t(y) * size_t(width) * C;
      for (int x = xmin; x < xmax; ++x)
        std::memcpy(dst + size_t(x) * C, src + size_t(xintab[size_t(x)]) * C, size_t(C));
    }
    yo += a4;
  }
  return out;
}

// ---- premultiplied alpha (Convert.c: rgbA2rgba / lA2la and back: rgba2rgbA / la2lA) ---------

void premultiply(Image& im) {
  const int C = im.channels;
  const int alpha_at = C - 1;
  uint8_t* p = im.data.data();
  const size_t n = size_t(im.width) * size_t(im.height);
  for (size_t i = 0; i < n; ++i, p += C) {
    const unsigned a = p[alpha_at];
    for (int c = 0; c < alpha_at; ++c) p[c] = uint8_t(muldiv255(p[c], a));
  }
}

void unpremultiply(Image& im) {
  const int C = im.channels;
  const int alpha_at = C - 1;
  uint8_t* p = im.data.data();
  const size_t n = size_t(im.width) * size_t(im.height);
  for (size_t i = 0; i < n; ++i, p += C) {
    const int a = p[alpha_at];
    if (a == 255 || a == 0) continue;
    for (int c = 0; c < alpha_at; ++c) p[c] = clip8i((255 * int(p[c])) / a);
  }
}

}  // namespace

// ---- public detail API (vision/resample_detail.h) --------------------------------------------

bool simd_available() { return simd_available_once(); }

bool simd_enabled() { return use_simd(); }

void set_simd_enabled(bool on) {
  simd_flag().store(on && simd_available_once(), std::memory_order_relaxed);
}

ResampleCoeffs precompute_bicubic_coeffs(int in_size, int out_size) {
  BGEVL_CHECK_ARG(in_size > 0 && out_size > 0, "resize: sizes must be positive (", in_size, " -> ",
                  out_size, ")");
  // Resample.c precompute_coeffs with box (in0, in1) = (0, in_size) as floats.
  const float in0 = 0.0f, in1 = float(in_size);
  const double support_base = 2.0;  // BICUBIC.support
  double filterscale, scale;
  filterscale = scale = double(in1 - in0) / out_size;
  if (filterscale < 1.0) filterscale = 1.0;
  const double support = support_base * filterscale;
  const int ksize = int(std::ceil(support)) * 2 + 1;
  BGEVL_CHECK_ARG(out_size <= std::numeric_limits<int>::max() / (ksize * int(sizeof(double))),
                  "resize: output size ", out_size, " too large");

  ResampleCoeffs r;
  r.ksize = ksize;
  r.bounds.resize(size_t(out_size) * 2);
  r.kk.assign(size_t(out_size) * ksize, 0);
  std::vector<double> k(static_cast<size_t>(ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    int x = 0;
    for (; x < xmax; ++x) {
      const double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[size_t(x)] = w;
      ww += w;
    }
    for (x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[size_t(x)] /= ww;
    }
    for (; x < ksize; ++x) k[size_t(x)] = 0;
    // normalize_coeffs_8bpc
    int32_t* kk = &r.kk[size_t(xx) * ksize];
    for (x = 0; x < ksize; ++x) {
      const double v = k[size_t(x)];
      kk[x] = v < 0 ? int32_t(-0.5 + v * (1 << kPrecisionBits))
                    : int32_t(0.5 + v * (1 << kPrecisionBits));
    }
    r.bounds[size_t(xx) * 2 + 0] = xmin;
    r.bounds[size_t(xx) * 2 + 1] = xmax;
  }
  return r;
}

void resize_bicubic_window(const uint8_t* in, int in_w, int in_h, int channels, int out_w,
                           int out_h, int x0, int y0, int nx, int ny, uint8_t* out,
                           size_t out_stride) {
  BGEVL_CHECK_ARG(in_w > 0 && in_h > 0 && out_w > 0 && out_h > 0,
                  "resize: sizes must be positive (", in_w, "x", in_h, " -> ", out_w, "x", out_h,
                  ")");
  BGEVL_CHECK_ARG(x0 >= 0 && y0 >= 0 && nx >= 0 && ny >= 0 && x0 + nx <= out_w && y0 + ny <= out_h,
                  "resize: window outside the output");
  if (nx == 0 || ny == 0) return;
  const size_t C = size_t(channels);
  const bool need_h = out_w != in_w;
  const bool need_v = out_h != in_h;
  thread_local std::vector<uint8_t> temp;
  thread_local std::vector<int32_t> acc;

  if (need_h) {
    const auto cx = cached_coeffs(in_w, out_w);
    if (need_v) {
      const auto cy = cached_coeffs(in_h, out_h);
      // Source rows used by the output rows y0 .. y0+ny-1 (bounds are monotonic).
      const int row0 = cy->bounds[2 * y0];
      const int row1 = cy->bounds[2 * (y0 + ny - 1)] + cy->bounds[2 * (y0 + ny - 1) + 1];
      temp.resize(size_t(row1 - row0) * size_t(nx) * C);
      horizontal_pass(in, in_w, channels, row0, row1 - row0, *cx, x0, nx, temp.data());
      vertical_pass(temp.data(), size_t(nx) * C, 0, row0, size_t(nx) * C, *cy, y0, ny, out,
                    out_stride, acc);
    } else if (out_stride == size_t(nx) * C) {
      horizontal_pass(in, in_w, channels, y0, ny, *cx, x0, nx, out);
    } else {
      temp.resize(size_t(ny) * size_t(nx) * C);
      horizontal_pass(in, in_w, channels, y0, ny, *cx, x0, nx, temp.data());
      for (int y = 0; y < ny; ++y)
        std::memcpy(out + size_t(y) * out_stride, temp.data() + size_t(y) * nx * C, nx * C);
    }
  } else if (need_v) {
    const auto cy = cached_coeffs(in_h, out_h);
    vertical_pass(in, size_t(in_w) * C, size_t(x0) * C, 0, size_t(nx) * C, *cy, y0, ny, out,
                  out_stride, acc);
  } else {
    for (int y = 0; y < ny; ++y)
      std::memcpy(out + size_t(y) * out_stride,
                  in + (size_t(y0 + y) * size_t(in_w) + size_t(x0)) * C, size_t(nx) * C);
  }
}

// ---- public API (vision/image.h) ----------------------------------------------------------------

Image from_pixels(const uint8_t* data, int height, int width, PilMode mode) {
  BGEVL_CHECK_ARG(height > 0 && width > 0, "image pixels: height and width must be positive, got ",
                  height, "x", width);
  BGEVL_CHECK_ARG(data != nullptr, "image pixels: null data pointer");
  const int channels = channels_of(mode);
  const size_t n = size_t(height) * size_t(width) * size_t(channels);
  BGEVL_CHECK_ARG(n / size_t(channels) / size_t(width) == size_t(height),
                  "image pixels: size overflows");
  Image im;
  im.width = width;
  im.height = height;
  im.channels = channels;
  im.mode = mode;
  im.data.assign(data, data + n);
  return im;
}

Image from_pixels(const uint8_t* data, int height, int width, int channels) {
  BGEVL_CHECK_ARG(channels == 1 || channels == 3 || channels == 4,
                  "image pixels: expected 1, 3 or 4 channels (L, RGB, RGBA), got ", channels);
  return from_pixels(data, height, width,
                     channels == 1 ? PilMode::L : (channels == 3 ? PilMode::RGB : PilMode::RGBA));
}

Image to_rgb(const Image& im) {
  check_image(im, "to_rgb");
  Image out;
  out.width = im.width;
  out.height = im.height;
  out.channels = 3;
  out.mode = PilMode::RGB;
  const size_t n = size_t(im.width) * size_t(im.height);
  if (im.mode == PilMode::RGB || im.mode == PilMode::P) {  // P is stored expanded (p2rgb)
    out.data = im.data;
    return out;
  }
  out.data.resize(n * 3);
  const uint8_t* s = im.data.data();
  uint8_t* d = out.data.data();
  switch (im.mode) {
    case PilMode::L:  // l2rgb
      for (size_t i = 0; i < n; ++i, d += 3) d[0] = d[1] = d[2] = s[i];
      break;
    case PilMode::One:  // bit2rgb: any non-zero is white
      for (size_t i = 0; i < n; ++i, d += 3) d[0] = d[1] = d[2] = s[i] ? 255 : 0;
      break;
    case PilMode::LA:  // la2rgb: alpha dropped
      for (size_t i = 0; i < n; ++i, d += 3, s += 2) d[0] = d[1] = d[2] = s[0];
      break;
    case PilMode::RGBA:  // rgba2rgb: alpha dropped, not composited
      for (size_t i = 0; i < n; ++i, d += 3, s += 4) {
        d[0] = s[0];
        d[1] = s[1];
        d[2] = s[2];
      }
      break;
    case PilMode::CMYK:  // cmyk2rgb
      for (size_t i = 0; i < n; ++i, d += 3, s += 4) {
        const int nk = 255 - s[3];
        d[0] = clip8i(nk - int(muldiv255(s[0], unsigned(nk))));
        d[1] = clip8i(nk - int(muldiv255(s[1], unsigned(nk))));
        d[2] = clip8i(nk - int(muldiv255(s[2], unsigned(nk))));
      }
      break;
    default:
      break;
  }
  return out;
}

Image resize_bicubic(const Image& im, int width, int height) {
  check_image(im, "resize");
  BGEVL_CHECK_ARG(width > 0 && height > 0, "resize: height and width must be > 0, got ", width, "x",
                  height);
  // Image.resize: same size -> copy.
  if (width == im.width && height == im.height) return im;
  // "1" and "P" always resample with NEAREST.
  if (im.mode == PilMode::P || im.mode == PilMode::One) return resize_nearest(im, width, height);
  Image out;
  out.width = width;
  out.height = height;
  out.channels = im.channels;
  out.mode = im.mode;
  out.data.resize(size_t(width) * size_t(height) * size_t(im.channels));
  if (im.mode == PilMode::LA || im.mode == PilMode::RGBA) {
    // im.convert("La"/"RGBa").resize(...).convert(mode)
    Image pre = im;
    premultiply(pre);
    resize_bicubic_window(pre.data.data(), im.width, im.height, im.channels, width, height, 0, 0,
                          width, height, out.data.data(), size_t(width) * im.channels);
    unpremultiply(out);
    return out;
  }
  resize_bicubic_window(im.data.data(), im.width, im.height, im.channels, width, height, 0, 0,
                        width, height, out.data.data(), size_t(width) * im.channels);
  return out;
}

}  // namespace bgevl::vision
