// PIL-exact resampling and conversion, and CLIP preprocessing (src/vision); decoding is in
// test_vision_decode.cpp.
// The expected values come from Pillow 9.4 via tests/reference/gen_vision_fixtures.py.
#include "vision_test_util.h"

namespace fs = std::filesystem;
using namespace bgevl::vision;
using namespace bgevl::test::vision_util;

// ---- resize and to_rgb against Pillow 9.4 -----------------------------------------------------

TEST(VisionResize, MatchesPillowByteForByte) {
  const auto cases = load_cases("resize_cases.bin");
  int n = 0;
  for (const Case& c : cases) {
    if (c.op != 0) continue;
    ++n;
    const Image got = resize_bicubic(c.in, c.out_w, c.out_h);
    EXPECT_EQ(compare(got, c), "") << c.name;
  }
  EXPECT_GE(n, 30);
}

TEST(VisionResize, WindowEqualsFullResize) {
  std::mt19937 rng(7);
  for (int t = 0; t < 40; ++t) {
    const int iw = 1 + int(rng() % 90), ih = 1 + int(rng() % 90);
    const int ow = 1 + int(rng() % 120), oh = 1 + int(rng() % 120);
    const int C = 1 + int(rng() % 4);
    const Image im = random_image(iw, ih, C == 2 ? 3 : C, uint32_t(t));
    const int c = im.channels;
    std::vector<uint8_t> full(size_t(ow) * oh * c);
    resize_bicubic_window(im.data.data(), iw, ih, c, ow, oh, 0, 0, ow, oh, full.data(),
                          size_t(ow) * c);
    if (im.mode == PilMode::L || im.mode == PilMode::RGB) {
      const Image ref = resize_bicubic(im, ow, oh);
      ASSERT_EQ(ref.data, full) << iw << "x" << ih << "->" << ow << "x" << oh;
    }
    const int x0 = int(rng() % ow), y0 = int(rng() % oh);
    const int nx = 1 + int(rng() % (ow - x0)), ny = 1 + int(rng() % (oh - y0));
    const size_t stride = size_t(nx) * c + (t % 2 ? 7 : 0);  // padded rows on odd trials
    std::vector<uint8_t> win(stride * ny);
    resize_bicubic_window(im.data.data(), iw, ih, c, ow, oh, x0, y0, nx, ny, win.data(), stride);
    for (int y = 0; y < ny; ++y)
      ASSERT_EQ(0, std::memcmp(win.data() + y * stride,
                               full.data() + (size_t(y0 + y) * ow + x0) * c, size_t(nx) * c))
          << "window " << x0 << "," << y0 << " " << nx << "x" << ny;
  }
}

TEST(VisionResize, CoefficientsSumToOneAndRejectBadSizes) {
  for (auto [in, out] : {std::pair{640, 298}, {1, 224}, {224, 224}, {7, 3}}) {
    const ResampleCoeffs r = precompute_bicubic_coeffs(in, out);
    for (int o = 0; o < out; ++o) {
      long long s = 0;
      for (int k = 0; k < r.ksize; ++k) s += r.kk[size_t(o) * r.ksize + k];
      EXPECT_NEAR(double(s), double(1 << 22), 8.0) << in << "->" << out << " at " << o;
      EXPECT_GE(r.bounds[2 * o], 0);
      EXPECT_LE(r.bounds[2 * o] + r.bounds[2 * o + 1], in);
    }
  }
  const Image im = random_image(4, 4, 3, 1);
  EXPECT_THROW(resize_bicubic(im, 0, 4), bgevl::InvalidArgumentError);
  EXPECT_THROW(resize_bicubic(im, 4, -1), bgevl::InvalidArgumentError);
  Image broken = im;
  broken.data.pop_back();
  EXPECT_THROW(resize_bicubic(broken, 8, 8), bgevl::InvalidArgumentError);
}

// ---- the AVX2 passes against the scalar ones ---------------------------------------------------

namespace {

// Switches the AVX2 resampler on or off for a scope; restores the previous state.
struct SimdScope {
  bool before = simd_enabled();
  explicit SimdScope(bool on) { set_simd_enabled(on); }
  ~SimdScope() { set_simd_enabled(before); }
};

// resize_bicubic_window with the scalar passes and with the AVX2 ones.
std::pair<std::vector<uint8_t>, std::vector<uint8_t>> window_both(const Image& im, int ow, int oh,
                                                                  int x0, int y0, int nx, int ny,
                                                                  size_t pad = 0) {
  std::pair<std::vector<uint8_t>, std::vector<uint8_t>> r;
  const size_t stride = size_t(nx) * im.channels + pad;
  for (bool on : {false, true}) {
    SimdScope scope(on);
    EXPECT_EQ(simd_enabled(), on);
    auto& out = on ? r.second : r.first;
    out.assign(stride * size_t(ny), 0xA5);
    resize_bicubic_window(im.data.data(), im.width, im.height, im.channels, ow, oh, x0, y0, nx, ny,
                          out.data(), stride);
  }
  return r;
}

Image random_mode_image(int w, int h, PilMode mode, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> px(size_t(w) * h * channels_of(mode));
  for (auto& v : px) v = uint8_t(rng() & 0xFF);
  return from_pixels(px.data(), h, w, mode);
}

#define REQUIRE_SIMD() \
  if (!simd_available()) GTEST_SKIP() << "no AVX2 on this CPU (or not an x86-64 build)"

}  // namespace

TEST(VisionResampleSimd, DispatchSwitch) {
  const bool before = simd_enabled();
  set_simd_enabled(false);
  EXPECT_FALSE(simd_enabled());
  set_simd_enabled(true);
  EXPECT_EQ(simd_enabled(), simd_available());
  set_simd_enabled(before);
  // Unless BGEVL_NO_SIMD asks otherwise, the AVX2 passes are the default where available.
  const char* env = std::getenv("BGEVL_NO_SIMD");
  if (env == nullptr || std::string(env).empty() || std::string(env) == "0") {
    EXPECT_EQ(before, simd_available());
  } else {
    EXPECT_FALSE(before) << "BGEVL_NO_SIMD=" << env;
  }
}

TEST(VisionResampleSimd, SmallWidthsAndHeightsEqualScalar) {
  REQUIRE_SIMD();
  std::mt19937 rng(11);
  for (int w = 1; w <= 40; ++w)
    for (int C : {1, 2, 3, 4}) {
      const int h = 1 + int(rng() % 40);
      const Image im = random_mode_image(w, h,
                                         C == 1   ? PilMode::L
                                         : C == 2 ? PilMode::LA
                                         : C == 3 ? PilMode::RGB
                                                  : PilMode::RGBA,
                                         uint32_t(w * 7 + C));
      for (auto [ow, oh] : {std::pair{1 + int(rng() % 40), 1 + int(rng() % 40)},
                            {1 + int(rng() % 90), h},
                            {w, 1 + int(rng() % 90)},
                            {2 * w + 3, 1}}) {
        if (ow == w && oh == h) continue;
        const auto [scalar, simd] = window_both(im, ow, oh, 0, 0, ow, oh);
        ASSERT_EQ(scalar, simd) << w << "x" << h << "x" << C << " -> " << ow << "x" << oh;
      }
    }
}

TEST(VisionResampleSimd, RealSizesEqualScalar) {
  REQUIRE_SIMD();
  struct S {
    int iw, ih, ow, oh, C;
  };
  const S sizes[] = {
      {640, 480, 298, 224, 3}, {480, 640, 224, 298, 3}, {1280, 960, 298, 224, 3},
      {640, 480, 298, 224, 1}, {333, 517, 224, 347, 3}, {1001, 7, 13, 3, 3},
      {97, 61, 224, 140, 3},   {17, 23, 671, 449, 1},   {1, 1, 224, 224, 3},
      {1, 300, 7, 224, 3},     {300, 1, 224, 3, 1},     {2000, 3, 3, 2000, 3},
      {640, 480, 640, 224, 3}, {640, 480, 298, 480, 3}, {523, 389, 224, 166, 4},
      {389, 523, 166, 224, 2}, {4000, 9, 1, 9, 3},      {9, 4000, 9, 1, 1},
  };
  uint32_t seed = 0;
  for (const S& s : sizes) {
    const Image im = s.C == 3 && seed % 2 ? photo_like(s.iw, s.ih, seed)
                                          : random_mode_image(s.iw, s.ih,
                                                              s.C == 1   ? PilMode::L
                                                              : s.C == 2 ? PilMode::LA
                                                              : s.C == 3 ? PilMode::RGB
                                                                         : PilMode::RGBA,
                                                              seed);
    ++seed;
    const auto [scalar, simd] = window_both(im, s.ow, s.oh, 0, 0, s.ow, s.oh);
    ASSERT_EQ(scalar, simd) << s.iw << "x" << s.ih << "x" << s.C << " -> " << s.ow << "x" << s.oh;
  }
}

TEST(VisionResampleSimd, WindowsEqualScalar) {
  REQUIRE_SIMD();
  std::mt19937 rng(5);
  for (int t = 0; t < 200; ++t) {
    const int iw = 1 + int(rng() % 300), ih = 1 + int(rng() % 300);
    const int ow = 1 + int(rng() % 300), oh = 1 + int(rng() % 300);
    const int C = 1 + int(rng() % 4);
    const Image im = random_mode_image(iw, ih,
                                       C == 1   ? PilMode::L
                                       : C == 2 ? PilMode::LA
                                       : C == 3 ? PilMode::RGB
                                                : PilMode::RGBA,
                                       uint32_t(100 + t));
    const int x0 = int(rng() % ow), y0 = int(rng() % oh);
    const int nx = 1 + int(rng() % (ow - x0)), ny = 1 + int(rng() % (oh - y0));
    const auto [scalar, simd] = window_both(im, ow, oh, x0, y0, nx, ny, t % 3 == 0 ? 5 : 0);
    ASSERT_EQ(scalar, simd) << iw << "x" << ih << "x" << C << " -> " << ow << "x" << oh
                            << " window " << x0 << "," << y0 << " " << nx << "x" << ny;
  }
  // The CLIP center crop of a 640x480 image.
  const Image photo = photo_like(640, 480, 3);
  const auto [scalar, simd] = window_both(photo, 298, 224, 37, 0, 224, 224);
  EXPECT_EQ(scalar, simd);
}

TEST(VisionResampleSimd, PremultipliedAndClipPreprocessEqualScalar) {
  REQUIRE_SIMD();
  for (PilMode mode : {PilMode::L, PilMode::LA, PilMode::RGB, PilMode::RGBA}) {
    const Image im = random_mode_image(203, 151, mode, 9);
    std::vector<uint8_t> got[2];
    for (bool on : {false, true}) {
      SimdScope scope(on);
      got[on] = resize_bicubic(im, 97, 311).data;
    }
    EXPECT_EQ(got[0], got[1]) << mode_name(mode);
  }
  ClipImageConfig cfg;
  std::vector<float> pre[2];
  for (auto [w, h] : {std::pair{640, 480}, {480, 640}, {1280, 960}, {100, 50}}) {
    const Image im = photo_like(w, h, uint32_t(w));
    for (bool on : {false, true}) {
      SimdScope scope(on);
      pre[on].assign(size_t(3) * cfg.crop_height * cfg.crop_width, -1.0f);
      clip_preprocess(im, cfg, pre[on].data());
    }
    EXPECT_EQ(0, std::memcmp(pre[0].data(), pre[1].data(), pre[0].size() * sizeof(float)))
        << w << "x" << h;
  }
}

TEST(VisionResampleSimd, BothPathsMatchPillow) {
  const auto cases = load_cases("resize_cases.bin");
  for (bool on : {false, true}) {
    SimdScope scope(on);
    for (const Case& c : cases) {
      if (c.op != 0) continue;
      EXPECT_EQ(compare(resize_bicubic(c.in, c.out_w, c.out_h), c), "")
          << c.name << (on ? " (AVX2)" : " (scalar)");
    }
  }
}

// Scalar vs AVX2 time of the passes (run with --gtest_also_run_disabled_tests).
TEST(VisionResampleSimd, DISABLED_Throughput) {
  REQUIRE_SIMD();
  struct S {
    const char* what;
    int iw, ih, ow, oh, C, x0, nx;
  };
  const S cases[] = {
      {"640x480 RGB -> 298x224, crop 224 (CLIP)", 640, 480, 298, 224, 3, 37, 224},
      {"1280x960 RGB -> 298x224, crop 224 (CLIP)", 1280, 960, 298, 224, 3, 37, 224},
      {"640x480 RGB -> 298x480 (horizontal only)", 640, 480, 298, 480, 3, 0, 298},
      {"640x480 RGB -> 640x224 (vertical only)", 640, 480, 640, 224, 3, 0, 640},
      {"640x480 L -> 298x224", 640, 480, 298, 224, 1, 0, 298},
      {"224x224 RGB -> 672x672 (LLaVA-like upscale)", 224, 224, 672, 672, 3, 0, 672}};
  for (const S& s : cases) {
    const Image im = s.C == 3 ? photo_like(s.iw, s.ih, 1) : random_image(s.iw, s.ih, s.C, 1);
    std::vector<uint8_t> out(size_t(s.nx) * s.oh * s.C);
    double ms[2];
    for (bool on : {false, true}) {
      SimdScope scope(on);
      double best = 1e30;
      for (int rep = 0; rep < 5; ++rep) {
        const int n = 20;
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i)
          resize_bicubic_window(im.data.data(), s.iw, s.ih, s.C, s.ow, s.oh, s.x0, 0, s.nx, s.oh,
                                out.data(), size_t(s.nx) * s.C);
        const auto t1 = std::chrono::steady_clock::now();
        best = std::min(best, 1e3 * std::chrono::duration<double>(t1 - t0).count() / n);
      }
      ms[on] = best;
    }
    std::printf("%-46s scalar %7.3f ms  avx2 %7.3f ms  x%.2f\n", s.what, ms[0], ms[1],
                ms[0] / ms[1]);
  }
}

TEST(VisionConvert, ToRgbMatchesPillow) {
  const auto cases = load_cases("resize_cases.bin");
  int n = 0;
  for (const Case& c : cases) {
    if (c.op != 1) continue;
    ++n;
    EXPECT_EQ(compare(to_rgb(c.in), c), "") << c.name;
  }
  EXPECT_EQ(n, 7);  // L, LA, RGB, RGBA, CMYK, P, 1
}

TEST(VisionConvert, KnownValues) {
  Image cmyk;
  cmyk.width = 3;
  cmyk.height = 1;
  cmyk.channels = 4;
  cmyk.mode = PilMode::CMYK;
  cmyk.data = {0, 0, 0, 0, 255, 0, 0, 0, 100, 50, 25, 128};
  const Image rgb = to_rgb(cmyk);
  // cmyk2rgb: nk = 255 - k; out = nk - MULDIV255(c, nk)
  const std::vector<uint8_t> expect = {255, 255, 255, 0, 255, 255, 77, 102, 115};
  EXPECT_EQ(rgb.data, expect);
  Image la;
  la.width = 2;
  la.height = 1;
  la.channels = 2;
  la.mode = PilMode::LA;
  la.data = {10, 0, 200, 255};
  EXPECT_EQ(to_rgb(la).data, (std::vector<uint8_t>{10, 10, 10, 200, 200, 200}));
}

TEST(VisionConvert, FromPixels) {
  const uint8_t px[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const Image a = from_pixels(px, 2, 2, 3);
  EXPECT_EQ(a.width, 2);
  EXPECT_EQ(a.height, 2);
  EXPECT_EQ(a.mode, PilMode::RGB);
  EXPECT_EQ(a.data, std::vector<uint8_t>(px, px + 12));
  EXPECT_EQ(from_pixels(px, 3, 1, 4).mode, PilMode::RGBA);
  EXPECT_EQ(from_pixels(px, 3, 4, 1).mode, PilMode::L);
  EXPECT_THROW(from_pixels(px, 0, 2, 3), bgevl::InvalidArgumentError);
  EXPECT_THROW(from_pixels(px, 2, -1, 3), bgevl::InvalidArgumentError);
  EXPECT_THROW(from_pixels(px, 2, 2, 2), bgevl::InvalidArgumentError);
  EXPECT_THROW(from_pixels(px, 2, 2, 5), bgevl::InvalidArgumentError);
  EXPECT_THROW(from_pixels(nullptr, 2, 2, 3), bgevl::InvalidArgumentError);
}

// ---- CLIP preprocessing -----------------------------------------------------------------------

namespace {

// The reference pipeline written the slow, obvious way: full resize, crop with zero padding,
// rescale in double then float32, normalise in float32.
std::vector<float> reference_preprocess(const Image& im0, const ClipImageConfig& cfg) {
  Image im = im0.mode == PilMode::RGB ? im0 : to_rgb(im0);
  if (cfg.do_resize) {
    const int w = im.width, h = im.height;
    const int s = std::min(w, h), l = std::max(w, h);
    const int nl = int(double(cfg.shortest_edge * (long long)l) / s);
    im = w <= h ? resize_bicubic(im, cfg.shortest_edge, nl)
                : resize_bicubic(im, nl, cfg.shortest_edge);
  }
  const int ch = cfg.crop_height, cw = cfg.crop_width;
  auto fdiv = [](int a) { return int(std::floor(a / 2.0)); };
  const int top = fdiv(im.height - ch), left = fdiv(im.width - cw);
  std::vector<float> out(size_t(3) * ch * cw);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < ch; ++y)
      for (int x = 0; x < cw; ++x) {
        const int sy = y + top, sx = x + left;
        uint8_t v = 0;
        if (sy >= 0 && sy < im.height && sx >= 0 && sx < im.width)
          v = im.data[(size_t(sy) * im.width + sx) * 3 + c];
        float f = cfg.do_rescale ? float(double(v) * cfg.rescale_factor) : float(v);
        if (cfg.do_normalize) {
          const float m = cfg.mean[c], sd = cfg.std[c];
          volatile float diff = f - m;  // float32 steps, as numpy
          f = diff / sd;
        }
        out[(size_t(c) * ch + y) * cw + x] = f;
      }
  return out;
}

void expect_same(const std::vector<float>& a, const std::vector<float>& b,
                 const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += std::memcmp(&a[i], &b[i], 4) != 0;
  EXPECT_EQ(diff, 0u) << what;
}

fs::path write_config(const fs::path& dir, const std::string& name, const std::string& json) {
  const fs::path p = dir / name;
  write_file(p, json);
  return p;
}

}  // namespace

TEST(VisionClip, PreprocessMatchesStraightforwardPipeline) {
  ClipImageConfig cfg;
  struct Sz {
    int w, h;
  };
  for (Sz s : {Sz{640, 480}, Sz{480, 640}, Sz{224, 224}, Sz{225, 224}, Sz{300, 1000}, Sz{1, 1},
               Sz{37, 5}, Sz{5, 37}, Sz{2, 500}, Sz{100, 99}}) {
    const Image im = photo_like(s.w, s.h, uint32_t(s.w * 31 + s.h));
    std::vector<float> got(size_t(3) * 224 * 224, -99.f);
    clip_preprocess(im, cfg, got.data());
    expect_same(got, reference_preprocess(im, cfg),
                std::to_string(s.w) + "x" + std::to_string(s.h));
  }
  // Other modes are converted first.
  const Image l = random_image(50, 40, 1, 5);
  std::vector<float> a(size_t(3) * 224 * 224), b(a.size());
  clip_preprocess(l, cfg, a.data());
  clip_preprocess(to_rgb(l), cfg, b.data());
  expect_same(a, b, "L");
}

TEST(VisionClip, CropLargerThanImagePadsWithZeros) {
  ClipImageConfig cfg;
  cfg.do_resize = false;
  cfg.crop_height = 9;
  cfg.crop_width = 12;
  const Image im = random_image(5, 4, 3, 11);  // smaller than the crop both ways
  std::vector<float> got(size_t(3) * 9 * 12);
  clip_preprocess(im, cfg, got.data());
  expect_same(got, reference_preprocess(im, cfg), "pad");
  // top = (4 - 9) // 2 = -3, left = (5 - 12) // 2 = -4: pixel (0,0) lands at row 3, column 4
  const float v00 = float(float(im.data[0] * (1.0 / 255.0)) - cfg.mean[0]) / cfg.std[0];
  EXPECT_EQ(got[3 * 12 + 4], v00);
  EXPECT_EQ(got[0], (0.f - cfg.mean[0]) / cfg.std[0]);
  // Mixed: wider than the crop, shorter than it.
  cfg.crop_height = 7;
  cfg.crop_width = 3;
  const Image im2 = random_image(8, 4, 3, 12);
  std::vector<float> got2(size_t(3) * 7 * 3);
  clip_preprocess(im2, cfg, got2.data());
  expect_same(got2, reference_preprocess(im2, cfg), "mixed");
}

TEST(VisionClip, ConstantImageKnownValues) {
  ClipImageConfig cfg;
  std::vector<uint8_t> px(size_t(300) * 200 * 3);
  for (size_t i = 0; i < px.size(); i += 3) {
    px[i] = 10;
    px[i + 1] = 128;
    px[i + 2] = 250;
  }
  const Image im = from_pixels(px.data(), 200, 300, 3);
  std::vector<float> out(size_t(3) * 224 * 224);
  clip_preprocess(im, cfg, out.data());
  const uint8_t vals[3] = {10, 128, 250};
  for (int c = 0; c < 3; ++c) {
    const float x = float(double(vals[c]) * (1.0 / 255.0));
    const float want = (x - cfg.mean[c]) / cfg.std[c];
    for (size_t i = 0; i < size_t(224) * 224; ++i) ASSERT_EQ(out[c * 224 * 224 + i], want) << c;
  }
}

TEST(VisionClip, LoadConfig) {
  ScratchDir dir("cfg");
  // The real BGE-VL-base file.
  auto p = write_config(dir.path, "real.json", R"({
  "crop_size": {"height": 224, "width": 224}, "do_center_crop": true, "do_convert_rgb": true,
  "do_normalize": true, "do_rescale": true, "do_resize": true,
  "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
  "image_std": [0.26862954, 0.26130258, 0.27577711], "processor_class": "CLIPProcessor",
  "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224}})");
  ClipImageConfig c = load_clip_image_config(p.string());
  EXPECT_EQ(c.shortest_edge, 224);
  EXPECT_EQ(c.crop_height, 224);
  EXPECT_EQ(c.crop_width, 224);
  EXPECT_EQ(c.rescale_factor, 0.00392156862745098);
  EXPECT_EQ(c.mean[0], 0.48145466f);
  EXPECT_EQ(c.std[2], 0.27577711f);
  // Missing keys take CLIP's defaults; ints for size and crop_size.
  p = write_config(dir.path, "min.json", R"({"size": 336, "crop_size": 320})");
  c = load_clip_image_config(p.string());
  EXPECT_EQ(c.shortest_edge, 336);
  EXPECT_EQ(c.crop_height, 320);
  EXPECT_EQ(c.crop_width, 320);
  EXPECT_TRUE(c.do_resize && c.do_rescale && c.do_normalize && c.do_convert_rgb);
  EXPECT_EQ(c.rescale_factor, 1.0 / 255.0);
  EXPECT_EQ(c.mean, (ClipImageConfig{}.mean));
  p = write_config(dir.path, "empty.json", "{}");
  c = load_clip_image_config(p.string());
  EXPECT_EQ(c.shortest_edge, 224);
  p = write_config(dir.path, "scalar_mean.json", R"({"image_mean": 0.5, "image_std": [1, 2, 3]})");
  c = load_clip_image_config(p.string());
  EXPECT_EQ(c.mean, (std::array<float, 3>{0.5f, 0.5f, 0.5f}));
  EXPECT_EQ(c.std, (std::array<float, 3>{1.f, 2.f, 3.f}));

  // Errors name the file and the key.
  EXPECT_THROW(load_clip_image_config((dir.path / "absent.json").string()),
               bgevl::FileNotFoundError);
  struct Bad {
    const char* json;
    const char* key;
  };
  for (Bad b :
       {Bad{R"({"size": {"shortest_edge": 224)", "not valid JSON"},
        Bad{R"({"resample": 2})", "resample"},
        Bad{R"({"size": {"height": 224, "width": 224}})", "size"},
        Bad{R"({"size": "big"})", "size"}, Bad{R"({"size": -3})", "size"},
        Bad{R"({"size": {"shortest_edge": 0}})", "shortest_edge"},
        Bad{R"({"crop_size": 0})", "crop_size"},
        Bad{R"({"crop_size": {"shortest_edge": 224}})", "crop_size"},
        Bad{R"({"image_mean": [0.5, 0.5]})", "image_mean"},
        Bad{R"({"image_std": ["a", 1, 2]})", "image_std"},
        Bad{R"({"do_resize": "yes"})", "do_resize"},
        Bad{R"({"do_center_crop": false})", "do_center_crop"}, Bad{R"([1, 2])", "object"}}) {
    p = write_config(dir.path, "bad.json", b.json);
    const std::string msg = expect_throw_message<bgevl::InvalidArgumentError>(
        [&] { load_clip_image_config(p.string()); });
    EXPECT_NE(msg.find("bad.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(b.key), std::string::npos) << b.json << " -> " << msg;
  }
}

// Throughput of decode + preprocess for a 640x480 JPEG (run with --gtest_also_run_disabled_tests).
TEST(VisionBench, DISABLED_ClipPreprocessThroughput) {
  REQUIRE_DECODING();
  const char* env = std::getenv("BGEVL_BENCH_JPEG");
  const std::string path = env ? env : "";
  if (path.empty()) GTEST_SKIP() << "set BGEVL_BENCH_JPEG to a 640x480 JPEG";
  const auto bytes = read_file(path);
  ClipImageConfig cfg;
  std::vector<float> out(size_t(3) * 224 * 224);
  const int n = 200;
  double t_dec = 0, t_pre = 0;
  for (int i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    const Image im = decode_bytes(bytes.data(), bytes.size(), path);
    auto t1 = std::chrono::steady_clock::now();
    clip_preprocess(im, cfg, out.data());
    auto t2 = std::chrono::steady_clock::now();
    t_dec += std::chrono::duration<double>(t1 - t0).count();
    t_pre += std::chrono::duration<double>(t2 - t1).count();
  }
  std::printf("decode %.3f ms, preprocess %.3f ms, total %.1f images/s\n", 1e3 * t_dec / n,
              1e3 * t_pre / n, n / (t_dec + t_pre));
}
