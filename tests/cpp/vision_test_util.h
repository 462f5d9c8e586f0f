// Helpers shared by the vision tests (test_vision.cpp, test_vision_decode.cpp): fixture files,
// Pillow fixture records, comparisons, synthetic images.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bgevl/errors.h"
#include "vision/image.h"
#include "vision/resample_detail.h"

#ifndef BGEVL_FIXTURES_DIR
#define BGEVL_FIXTURES_DIR "tests/fixtures"
#endif

namespace bgevl::test::vision_util {

namespace fs = std::filesystem;
using namespace bgevl::vision;

inline std::string vision_fixture(const std::string& name) {
  return std::string(BGEVL_FIXTURES_DIR) + "/vision/" + name;
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

inline void write_file(const fs::path& p, const void* data, size_t n) {
  std::ofstream f(p, std::ios::binary);
  f.write(static_cast<const char*>(data), std::streamsize(n));
}
inline void write_file(const fs::path& p, const std::vector<uint8_t>& d) {
  write_file(p, d.data(), d.size());
}
inline void write_file(const fs::path& p, const std::string& s) {
  write_file(p, s.data(), s.size());
}

struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name) {
    path = fs::temp_directory_path() / ("bgevl_vision_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

inline uint64_t fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001B3ull;
  return h;
}

inline const char* mode_name(PilMode m) {
  switch (m) {
    case PilMode::L:
      return "L";
    case PilMode::LA:
      return "LA";
    case PilMode::RGB:
      return "RGB";
    case PilMode::RGBA:
      return "RGBA";
    case PilMode::CMYK:
      return "CMYK";
    case PilMode::P:
      return "P";
    case PilMode::One:
      return "1";
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

inline std::vector<Case> load_cases(const std::string& file) {
  const std::vector<uint8_t> d = read_file(vision_fixture(file));
  size_t o = 0;
  auto need = [&](size_t n) {
    if (o + n > d.size()) throw std::runtime_error("fixture " + file + " is truncated");
  };
  auto u8 = [&]() {
    need(1);
    return d[o++];
  };
  auto u16 = [&]() {
    need(2);
    uint16_t v;
    std::memcpy(&v, &d[o], 2);
    o += 2;
    return v;
  };
  auto u32 = [&]() {
    need(4);
    uint32_t v;
    std::memcpy(&v, &d[o], 4);
    o += 4;
    return v;
  };
  auto u64 = [&]() {
    need(8);
    uint64_t v;
    std::memcpy(&v, &d[o], 8);
    o += 8;
    return v;
  };
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
inline std::string compare(const Image& got, const Case& c) {
  std::string err;
  if (got.mode != c.out_mode)
    err += std::string(" mode ") + mode_name(got.mode) + " != " + mode_name(c.out_mode);
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

inline Image random_image(int w, int h, int c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> px(size_t(w) * h * c);
  for (auto& v : px) v = uint8_t(rng() & 0xFF);
  return from_pixels(px.data(), h, w, c);
}

// A smooth image with a little noise, like a photo.
inline Image photo_like(int w, int h, uint32_t seed) {
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
inline std::string expect_throw_message(F&& f) {
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

// Whether the library was built with image decoding (BGEVL_WITH_OPENCV is private to it).
inline bool decoding_available() {
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

// Whether BMP, WebP and TIFF files decode too (they need OpenCV; JPEG and PNG do not).
inline bool opencv_decoding_available() {
  static const bool available = [] {
    if (!decoding_available()) return false;
    try {
      decode_file(vision_fixture("rgb.bmp"));
      return true;
    } catch (const bgevl::Error& e) {
      return std::string(e.what()).find("need OpenCV") == std::string::npos;
    }
  }();
  return available;
}

// A file name whose format needs OpenCV.
inline bool needs_opencv(const std::string& name) {
  for (const char* ext : {".bmp", ".webp", ".tif", ".tiff"}) {
    const std::string e(ext);
    if (name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0)
      return true;
  }
  return false;
}

}  // namespace bgevl::test::vision_util

#define REQUIRE_DECODING() \
  if (!decoding_available()) GTEST_SKIP() << "built without image decoding"
