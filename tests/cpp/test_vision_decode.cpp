// Image decoding against Pillow 9.4 (tests/reference/gen_vision_fixtures.py): modes, formats,
// files PIL rejects, messages.
#include "vision_test_util.h"

namespace fs = std::filesystem;
using namespace bgevl::vision;
using namespace bgevl::test::vision_util;

// ---- decoding ---------------------------------------------------------------------------------

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
  int jpeg_png = 0;
  for (const Case& c : cases) {
    ASSERT_EQ(c.op, 2);
    if (needs_opencv(c.name) && !opencv_decoding_available()) {
      // A build without OpenCV (the GPU build) refuses these formats, saying why.
      const std::string msg = expect_throw_message<bgevl::InvalidArgumentError>(
          [&] { decode_file(vision_fixture(c.name)); });
      EXPECT_NE(msg.find("need OpenCV"), std::string::npos) << c.name << ": " << msg;
      continue;
    }
    jpeg_png += !needs_opencv(c.name);
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
  EXPECT_GE(jpeg_png, 20);  // JPEG and PNG: decoded in every build with decoding
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
    bad.push_back(
        {std::string("noeoi_") + name, std::vector<uint8_t>(full.begin(), full.end() - 2)});
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

// probe_image (the server's pixel limit, checked before decoding) reads the size every decoder
// finds, for each fixture file of every format.
TEST(VisionDecode, ProbeGivesTheDecodedSize) {
  REQUIRE_DECODING();
  std::map<std::string, int> formats;
  for (const char* dir : {"vision", "images"}) {
    const fs::path d = fs::path(BGEVL_FIXTURES_DIR) / dir;
    if (!fs::is_directory(d)) continue;
    for (const auto& e : fs::directory_iterator(d)) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      const std::string b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      Image im;
      try {
        im = decode_file(e.path().string());
      } catch (const bgevl::Error&) {
        continue;  // files PIL rejects
      }
      const auto h = probe_image(reinterpret_cast<const uint8_t*>(b.data()), b.size());
      ASSERT_FALSE(h.format.empty()) << e.path();
      EXPECT_EQ(h.width, im.width) << e.path();
      EXPECT_EQ(h.height, im.height) << e.path();
      ++formats[h.format];
    }
  }
  for (const char* f : {"jpeg", "png", "bmp", "webp", "tiff"}) EXPECT_GT(formats[f], 0) << f;
  const uint8_t junk[] = "hello, not an image";
  EXPECT_TRUE(probe_image(junk, sizeof junk).format.empty());
  const uint8_t truncated[] = "\x89PNG\r\n\x1A\n\0\0";
  const auto t = probe_image(truncated, 10);
  EXPECT_EQ(t.format, "png");
  EXPECT_EQ(t.width, 0);
}
