// Image decoding, PIL-exact resampling/conversion and CLIP preprocessing (src/vision).
// The expected values come from Pillow 9.4 via tests/reference/gen_vision_fixtures.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bgevl/errors.h"
#include "vision/image.h"
#include "vision/resample_detail.h"

#ifndef BGEVL_FIXTURES_DIR
#define BGEVL_FIXTURES_DIR "tests/fixtures"
#endif

namespace fs = std::filesystem;
using namespace bgevl::vision;

namespace {

std::string vision_fixture(const std::string& name) {
  return std::string(BGEVL_FIXTURES_DIR) + "/vision/" + name;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& p, const void* data, size_t n) {
  std::ofstream f(p, std::ios::binary);
  f.write(static_cast<const char*>(data), std::streamsize(n));
}
void write_file(const fs::path& p, const std::vector<uint8_t>& d) { write_file(p, d.data(), d.size()); }
void write_file(const fs::path& p, const std::string& s) { write_file(p, s.data(), s.size()); }

struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name) {
    path = fs::temp_directory_path() /
           ("bgevl_vision_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

uint64_t fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

const char* mode_name(PilMode m) {
  switch (m) {
    case PilMode::L: return "L";
    case PilMode::LA: return "LA";
    case PilMode::RGB: return "RGB";
    case PilMode::RGBA: return "RGBA";
    case PilMode::CMYK: return "CMYK";
    case PilMode::P: return "P";
    case PilMode::One: return "1";
  }
  return "?";
}

// One record of tests/fixtures/vision/*.bin (format in gen_vision_fixtures.py).
struct Case {
  std::string name;
  int op = 0;
  Image in;
  PilMode out_mode = PilMode::RGB;
  int out_w = 0, out_h = 0, out_c = 0;
  bool hashed = false;
  std::vector<uint8_t> out;  // all pixels, or (hashed) the first row
  uint64_t out_hash = 0;
};

std::vector<Case> load_cases(const std::string& file) {
  const std::vector<uint8_t> d = read_file(vision_fixture(file));
  size_t o = 0;
  auto need = [&](size_t n) {
    if (o + n > d.size()) throw std::runtime_error("fixture " + file + " is truncated");
  };
  auto u8 = [&]() { need(1); return d[o++]; };
  auto u16 = [&]() { need(2); uint16_t v; std::memcpy(&v, &d[o], 2); o += 2; return v; };
  auto u32 = [&]() { need(4); uint32_t v; std::memcpy(&v, &d[o], 4); o += 4; return v; };
  auto u64 = [&]() { need(8); uint64_t v; std::memcpy(&v, &d[o], 8); o += 8; return v; };
  auto bytes = [&](size_t n) {
    need(n);
    std::vector<uint8_t> v(d.begin() + long(o), d.begin() + long(o + n));
    o += n;
    return v;
  };
  need(12);
  if (std::memcmp(d.data(), "BGVF", 4) != 0) throw std::runtime_error("bad fixture " + file);
  o = 4;
  if (u32() != 1) throw std::runtime_error("unknown fixture version in " + file);
  const uint32_t count = u32();
  std::vector<Case> cases;
  for (uint32_t i = 0; i < count; ++i) {
    Case c;
    const uint16_t nl = u16();
    need(nl);
    c.name.assign(reinterpret_cast<const char*>(&d[o]), nl);
    o += nl;
    c.op = u8();
    c.in.mode = PilMode(u8());
    c.in.width = int(u32());
    c.in.height = int(u32());
    c.in.channels = int(u32());
    c.out_mode = PilMode(u8());
    c.out_w = int(u32());
    c.out_h = int(u32());
    c.out_c = int(u32());
    c.hashed = u8() != 0;
    c.in.data = bytes(size_t(c.in.width) * c.in.height * c.in.channels);
    if (c.hashed) {
      c.out_hash = u64();
      c.out = bytes(size_t(c.out_w) * c.out_c);
    } else {
      c.out = bytes(size_t(c.out_w) * c.out_h * c.out_c);
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

// Compares an image with a fixture's expectation; returns "" when equal.
std::string compare(const Image& got, const Case& c) {
  std::string err;
  if (got.mode != c.out_mode) err += std::string(" mode ") + mode_name(got.mode) + " != " + mode_name(c.out_mode);
  if (got.width != c.out_w || got.height != c.out_h || got.channels != c.out_c)
    return err + " size " + std::to_string(got.width) + "x" + std::to_string(got.height) + "x" +
           std::to_string(got.channels) + " != " + std::to_string(c.out_w) + "x" +
           std::to_string(c.out_h) + "x" + std::to_string(c.out_c);
  if (got.data.size() != size_t(c.out_w) * c.out_h * c.out_c) return err + " bad buffer size";
  if (c.hashed) {
    if (std::memcmp(got.data.data(), c.out.data(), c.out.size()) != 0) err += " first row differs";
    if (fnv1a64(got.data.data(), got.data.size()) != c.out_hash) err += " pixel hash differs";
  } else {
    size_t diff = 0, first = 0;
    int maxd = 0;
    for (size_t i = 0; i < c.out.size(); ++i) {
      const int dd = std::abs(int(got.data[i]) - int(c.out[i]));
      if (dd) {
        if (!diff) first = i;
        ++diff;
        maxd = std::max(maxd, dd);
      }
    }
    if (diff)
      err += " " + std::to_string(diff) + " bytes differ (max " + std::to_string(maxd) +
             ", first at byte " + std::to_string(first) + ")";
  }
  return err;
}

Image random_image(int w, int h, int c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> px(size_t(w) * h * c);
  for (auto& v : px) v = uint8_t(rng() & 0xFF);
  return from_pixels(px.data(), h, w, c);
}

// A smooth image with a little noise, like a photo.
Image photo_like(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> px(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const double v = 128 + 100 * std::sin(0.03 * x * (c + 1) + 0.05 * y) + int(rng() % 21) - 10;
        px[(size_t(y) * w + x) * 3 + c] = uint8_t(std::clamp(v, 0.0, 255.0));
      }
  return from_pixels(px.data(), h, w, 3);
}

template <typename E, typename F>
std::string expect_throw_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception";
  return "";
}

}  // namespace

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

// ---- decoding ---------------------------------------------------------------------------------

namespace {
// Whether the library was built with image decoding (BGEVL_WITH_OPENCV is private to it).
bool decoding_available() {
  static const bool available = [] {
    try {
      decode_file(vision_fixture("rgb.png"));
      return true;
    } catch (const bgevl::InvalidArgumentError&) {
      return true;
    } catch (const bgevl::FileNotFoundError&) {
      return true;
    } catch (const bgevl::Error& e) {
      return std::string(e.what()).find("no image decoding") == std::string::npos;
    }
  }();
  return available;
}
}  // namespace

#define REQUIRE_DECODING() \
  if (!decoding_available()) GTEST_SKIP() << "built without image decoding"

TEST(VisionDecode, DisabledBuildSaysSo) {
  if (decoding_available()) GTEST_SKIP() << "built with image decoding";
  const uint8_t b[4] = {1, 2, 3, 4};
  try {
    decode_bytes(b, 4, "x.png");
    ADD_FAILURE() << "no exception";
  } catch (const bgevl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no image decoding"), std::string::npos) << e.what();
  }
}

TEST(VisionDecode, MatchesPillowOpen) {
  REQUIRE_DECODING();
  const auto cases = load_cases("decode_cases.bin");
  EXPECT_GE(cases.size(), 30u);
  for (const Case& c : cases) {
    ASSERT_EQ(c.op, 2);
    Image got;
    try {
      got = decode_file(vision_fixture(c.name));
    } catch (const std::exception& e) {
      ADD_FAILURE() << c.name << ": " << e.what();
      continue;
    }
    EXPECT_EQ(compare(got, c), "") << c.name;
    // decode_bytes gives the same
    const auto bytes = read_file(vision_fixture(c.name));
    const Image again = decode_bytes(bytes.data(), bytes.size(), c.name);
    EXPECT_EQ(again.data, got.data) << c.name;
  }
}

TEST(VisionDecode, ExifOrientationIsNotApplied) {
  REQUIRE_DECODING();
  // Both files carry orientation 6 (rotate 90); PIL keeps the stored pixel layout.
  const Image jpg = decode_file(vision_fixture("exif6.jpg"));
  EXPECT_EQ(jpg.width, 45);
  EXPECT_EQ(jpg.height, 37);
  const Image png = decode_file(vision_fixture("exif6.png"));
  const Image ref = decode_file(vision_fixture("rgb.png"));
  EXPECT_EQ(png.width, ref.width);
  EXPECT_EQ(png.height, ref.height);
  EXPECT_EQ(png.data, ref.data);
}

TEST(VisionDecode, PngWithoutIendLoadsLikePil) {
  REQUIRE_DECODING();
  const Image a = decode_file(vision_fixture("rgb_noiend.png"));
  const Image b = decode_file(vision_fixture("rgb.png"));
  EXPECT_EQ(a.data, b.data);
}

// Files PIL 9.4 fails to open or load (tests/reference/gen_vision_fixtures.py checks that it does):
// CRC errors before the image data, a chunk after it cut short, a chunk between IDATs, bad zlib
// checksum or filter type, a zlib stream ending mid-row, malformed tRNS/PLTE, ...
TEST(VisionDecode, PngFilesPilRejectsAreInvalidArgument) {
  REQUIRE_DECODING();
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(vision_fixture(""))) {
    const std::string n = e.path().filename().string();
    if (n.rfind("bad_", 0) == 0 && e.path().extension() == ".png") names.push_back(n);
  }
  EXPECT_GE(names.size(), 11u);
  for (const std::string& n : names) {
    const std::string path = vision_fixture(n);
    const std::string msg =
        expect_throw_message<bgevl::InvalidArgumentError>([&] { decode_file(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << n << ": " << msg;
    const auto bytes = read_file(path);
    EXPECT_THROW(decode_bytes(bytes.data(), bytes.size(), n), bgevl::InvalidArgumentError) << n;
  }
}

// libpng reports problems on stderr unless told otherwise ("libpng warning: iCCP: known incorrect
// sRGB profile" for some of tests/fixtures/images, "libpng error: ..." for damaged files).
TEST(VisionDecode, PngDecodingWritesNothingToStderr) {
  REQUIRE_DECODING();
  std::vector<std::string> paths;
  for (const char* dir : {"vision", "images"}) {
    const fs::path d = fs::path(BGEVL_FIXTURES_DIR) / dir;
    if (!fs::is_directory(d)) continue;
    for (const auto& e : fs::directory_iterator(d))
      if (e.path().extension() == ".png") paths.push_back(e.path().string());
  }
  ASSERT_GE(paths.size(), 20u);
  int good = 0;  // the files PIL loads
  for (const std::string& p : paths) good += fs::path(p).filename().string().rfind("bad_", 0) != 0;
  std::FILE* capture = std::tmpfile();
  ASSERT_NE(capture, nullptr);
  std::fflush(stderr);
  const int saved = ::dup(2);
  ASSERT_GE(saved, 0);
  ::dup2(::fileno(capture), 2);
  int decoded = 0;
  for (const std::string& p : paths) {
    std::vector<uint8_t> bytes = read_file(p);
    std::vector<std::vector<uint8_t>> variants = {bytes};
    variants.emplace_back(bytes.begin(), bytes.begin() + long(bytes.size() * 2 / 3));  // truncated
    std::vector<uint8_t> damaged = bytes;  // a CRC or the image data damaged
    for (size_t i = 29; i < damaged.size(); i += 97) damaged[i] ^= 0x20;
    variants.push_back(damaged);
    for (const auto& v : variants) {
      try {
        decode_bytes(v.data(), v.size(), p);
        ++decoded;
      } catch (const bgevl::InvalidArgumentError&) {
      }
    }
  }
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string printed;
  std::rewind(capture);
  for (int c; (c = std::fgetc(capture)) != EOF;) printed += char(c);
  std::fclose(capture);
  EXPECT_GE(decoded, good);
  EXPECT_EQ(printed, "");
}

TEST(VisionDecode, MissingFileIsFileNotFound) {
  REQUIRE_DECODING();
  const std::string msg = expect_throw_message<bgevl::FileNotFoundError>(
      [] { decode_file("/nonexistent/dir/no_such_image.jpg"); });
  EXPECT_NE(msg.find("no_such_image.jpg"), std::string::npos) << msg;
}

TEST(VisionDecode, BadFilesAreInvalidArgument) {
  REQUIRE_DECODING();
  ScratchDir dir("bad");
  struct Bad {
    std::string name;
    std::vector<uint8_t> bytes;
  };
  std::vector<Bad> bad;
  bad.push_back({"empty.jpg", {}});
  std::mt19937 rng(3);
  std::vector<uint8_t> garbage(3000);
  for (auto& v : garbage) v = uint8_t(rng());
  garbage[0] = 0x12;
  bad.push_back({"garbage.png", garbage});
  const std::string text = "just some text, not an image\n";
  bad.push_back({"text.jpg", std::vector<uint8_t>(text.begin(), text.end())});
  const std::string svg =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"4\" height=\"4\"><rect width=\"4\" "
      "height=\"4\"/></svg>";
  bad.push_back({"image.svg", std::vector<uint8_t>(svg.begin(), svg.end())});
  bad.push_back({"anim.gif", read_file(vision_fixture("unsupported.gif"))});
  // valid magic, corrupt body
  std::vector<uint8_t> jpg_magic = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0};
  jpg_magic.insert(jpg_magic.end(), garbage.begin(), garbage.begin() + 200);
  bad.push_back({"corrupt.jpg", jpg_magic});
  std::vector<uint8_t> png_magic = read_file(vision_fixture("rgb.png"));
  for (size_t i = 40; i < png_magic.size() - 20; ++i) png_magic[i] ^= 0x5A;
  bad.push_back({"corrupt.png", png_magic});
  // truncated files (PIL: OSError "image file is truncated")
  for (const char* name : {"rgb.jpg", "rgb_prog.jpg", "rgb444.jpg", "cmyk.jpg", "rgb.png",
                           "rgba.png", "rgb.bmp", "rgb_lossy.webp", "rgb.tif"}) {
    const auto full = read_file(vision_fixture(name));
    ASSERT_FALSE(full.empty()) << name;
    bad.push_back({std::string("half_") + name,
                   std::vector<uint8_t>(full.begin(), full.begin() + long(full.size() * 2 / 3))});
  }
  for (const char* name : {"rgb.jpg", "rgb_prog.jpg"}) {  // only the EOI marker missing
    const auto full = read_file(vision_fixture(name));
    bad.push_back({std::string("noeoi_") + name,
                   std::vector<uint8_t>(full.begin(), full.end() - 2)});
  }
  for (const Bad& b : bad) {
    const fs::path p = dir.path / b.name;
    write_file(p, b.bytes);
    const std::string msg =
        expect_throw_message<bgevl::InvalidArgumentError>([&] { decode_file(p.string()); });
    EXPECT_NE(msg.find(b.name), std::string::npos) << b.name << ": " << msg;
    if (!b.bytes.empty()) {
      EXPECT_THROW(decode_bytes(b.bytes.data(), b.bytes.size(), b.name),
                   bgevl::InvalidArgumentError)
          << b.name;
    }
  }
  // a directory
  const std::string msg =
      expect_throw_message<bgevl::InvalidArgumentError>([&] { decode_file(dir.path.string()); });
  EXPECT_NE(msg.find(dir.path.string()), std::string::npos) << msg;
  // truncated JPEG message says so
  const auto full = read_file(vision_fixture("rgb.jpg"));
  const std::string tmsg = expect_throw_message<bgevl::InvalidArgumentError>(
      [&] { decode_bytes(full.data(), full.size() / 2, "x.jpg"); });
  EXPECT_NE(tmsg.find("truncated"), std::string::npos) << tmsg;
}

TEST(VisionDecode, JpegCmykUsesPilFormula) {
  REQUIRE_DECODING();
  // cmyk.jpg is an Adobe CMYK JPEG: PIL opens it as CMYK (inverted on read) and converts with
  // cmyk2rgb; OpenCV's own CMYK conversion differs, which this test would catch.
  const Image im = decode_file(vision_fixture("cmyk.jpg"));
  EXPECT_EQ(im.mode, PilMode::CMYK);
  EXPECT_EQ(im.channels, 4);
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
    im = w <= h ? resize_bicubic(im, cfg.shortest_edge, nl) : resize_bicubic(im, nl, cfg.shortest_edge);
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

void expect_same(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
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
  for (Sz s : {Sz{640, 480}, Sz{480, 640}, Sz{224, 224}, Sz{225, 224}, Sz{300, 1000},
               Sz{1, 1}, Sz{37, 5}, Sz{5, 37}, Sz{2, 500}, Sz{100, 99}}) {
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
  for (Bad b : {Bad{R"({"size": {"shortest_edge": 224)", "malformed"},
                Bad{R"({"resample": 2})", "resample"},
                Bad{R"({"size": {"height": 224, "width": 224}})", "size"},
                Bad{R"({"size": "big"})", "size"},
                Bad{R"({"size": -3})", "size"},
                Bad{R"({"size": {"shortest_edge": 0}})", "shortest_edge"},
                Bad{R"({"crop_size": 0})", "crop_size"},
                Bad{R"({"crop_size": {"shortest_edge": 224}})", "crop_size"},
                Bad{R"({"image_mean": [0.5, 0.5]})", "image_mean"},
                Bad{R"({"image_std": ["a", 1, 2]})", "image_std"},
                Bad{R"({"do_resize": "yes"})", "do_resize"},
                Bad{R"({"do_center_crop": false})", "do_center_crop"},
                Bad{R"([1, 2])", "object"}}) {
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
