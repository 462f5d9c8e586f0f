// Hostile input to the torch-free layers (io core, text, vision): each class of the hardening
// issue gives a clear bgevl error naming the file, key or limit, without a crash, a hang or an
// allocation the input only pretends to need. Torch-free, so it also runs in the sanitizer build.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bgevl/errors.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors_header.h"
#include "vision/image.h"
#include "vision/llava_processor.h"
#include "vision_test_util.h"

#ifndef BGEVL_FIXTURES_DIR
#define BGEVL_FIXTURES_DIR "tests/fixtures"
#endif

namespace fs = std::filesystem;
using namespace bgevl;

namespace {

// The exception `fn` throws must be of type E and its message must contain every part.
template <typename E>
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& p : parts) EXPECT_NE(what.find(p), std::string::npos) << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/bgevl_hardening_XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& content) const {
    const auto p = path / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
};

std::string deep_array(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// ---- PNG writing (stored deflate blocks, real CRCs) -------------------------------------------

uint32_t crc32(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 255), char((v >> 8) & 255), char(v & 255)};
}

std::string chunk(const std::string& type, const std::string& data) {
  return be32(uint32_t(data.size())) + type + data + be32(crc32(type + data));
}

std::string ihdr(uint32_t w, uint32_t h) {
  return chunk("IHDR", be32(w) + be32(h) + std::string("\x08\x02\x00\x00\x00", 5));  // 8-bit RGB
}

// A zlib stream of `raw` in stored blocks.
std::string zlib_stored(const std::string& raw) {
  std::string z = "\x78\x01";
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(65535, raw.size() - pos);
    const bool last = pos + n == raw.size();
    z += char(last ? 1 : 0);
    z += char(n & 255);
    z += char(n >> 8);
    z += char(~n & 255);
    z += char((~n >> 8) & 255);
    z += raw.substr(pos, n);
    pos += n;
  } while (pos < raw.size());
  uint32_t a = 1, b = 0;
  for (unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  return z + be32((b << 16) | a);
}

std::string png(const std::string& chunks_before_idat, uint32_t w, uint32_t h) {
  std::string raw;
  for (uint32_t y = 0; y < h; ++y) raw += std::string(1, '\0') + std::string(size_t(w) * 3, 'A');
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunks_before_idat +
         chunk("IDAT", zlib_stored(raw)) + chunk("IEND", "");
}

vision::Image decode(const std::string& bytes) {
  return vision::decode_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                              "crafted");
}

}  // namespace

// ---- files ------------------------------------------------------------------------------------

TEST(Hardening, OnlyRegularFilesAreRead) {
  TempDir d;
  const std::string fifo = (d.path / "pipe").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Each returns at once (a blocking open of a FIFO would hang the test).
  expect_error<InvalidArgumentError>([&] { io::read_file(fifo); }, {fifo, "not a regular file"});
  expect_error<InvalidArgumentError>([&] { io::read_json_file(fifo, "config"); },
                                     {"config", "not a regular file"});
  expect_error<InvalidArgumentError>([&] { io::read_file("/dev/zero"); }, {"not a regular file"});
  expect_error<InvalidArgumentError>([&] { io::read_file(d.path.string()); }, {"is a directory"});
  expect_error<FileNotFoundError>([&] { io::read_file((d.path / "absent").string(), 10, "vocab"); },
                                  {"vocab not found", "absent"});
  expect_error<InvalidArgumentError>([&] { io::read_file(std::string("/etc/passwd\0x", 13)); },
                                     {"NUL byte"});
  const std::string big = d.write("big", std::string(100, 'x'));
  expect_error<InvalidArgumentError>([&] { io::read_file(big, 99); }, {"100 bytes", "limit of 99"});
  EXPECT_EQ(io::read_file(big, 100).size(), 100u);
}

TEST(Hardening, ImageDecodingReadsOnlyRegularFiles) {
  TempDir d;
  const std::string fifo = (d.path / "pipe.png").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error<InvalidArgumentError>([&] { vision::decode_file(fifo); }, {"not a regular file"});
  expect_error<InvalidArgumentError>([&] { vision::decode_file("/dev/urandom"); },
                                     {"not a regular file"});
}

TEST(Hardening, AtomicWriteLeavesTheOldFileWhenNotCommitted) {
  TempDir d;
  const std::string path = d.write("index.npy", "the good one");
  {
    io::AtomicFile f(path);
    f.write("half of a new one");
  }  // destroyed without commit: as if the process failed mid-write
  EXPECT_EQ(io::read_file(path), "the good one");
  for (const auto& e : fs::directory_iterator(d.path))
    EXPECT_EQ(e.path().filename(), "index.npy") << "a temporary file was left behind";
  io::write_file_atomic(path, "new");
  EXPECT_EQ(io::read_file(path), "new");
}

TEST(Hardening, FailedWriteIsAnErrorNotSuccess) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  expect_error<Error>(
      [] {
        io::AtomicFile f("/dev/full");
        f.write(std::string(1 << 16, 'x'));
        f.commit();
      },
      {"/dev/full"});
}

// ---- JSON -------------------------------------------------------------------------------------

TEST(Hardening, DeepJsonIsRefusedWhileParsing) {
  for (int depth : {65, 1000, 100000}) {
    expect_error<InvalidArgumentError>([&] { io::parse_json(deep_array(depth), "x.json"); },
                                       {"x.json", "nests deeper than 64 levels"});
  }
  EXPECT_NO_THROW(io::parse_json(deep_array(63), "ok.json"));
  TempDir d;
  const std::string cfg =
      d.write("preprocessor_config.json", "{\"image_mean\": " + deep_array(100000) + "}");
  expect_error<InvalidArgumentError>([&] { vision::load_clip_image_config(cfg); },
                                     {cfg, "nests deeper"});
}

TEST(Hardening, ErrorMessagesDescribeValuesBriefly) {
  nlohmann::json big = nlohmann::json::array();
  for (int i = 0; i < 100000; ++i) big.push_back(i);
  EXPECT_EQ(io::brief(big), "an array of 100000 values");
  EXPECT_EQ(io::brief(nlohmann::json::object()), "an object with 0 keys");
  EXPECT_EQ(io::brief(nlohmann::json(std::string(1000, 'a'))),
            "\"" + std::string(40, 'a') + "\"... (1000 bytes)");
  EXPECT_EQ(io::brief(nlohmann::json(3)), "3");
  TempDir d;
  const std::string cfg =
      d.write("preprocessor_config.json", R"({"image_mean": [1, 2, {"a": [1]}]})");
  expect_error<InvalidArgumentError>([&] { vision::load_clip_image_config(cfg); },
                                     {"image_mean[2]", "an object with 1 key"});
}

TEST(Hardening, ErrorTextsAreValidUtf8AndNeverEmpty) {
  const Error e(std::string("cannot open '/tmp/\xff\xfe.png'\0!", 27));
  EXPECT_EQ(std::string(e.what()), "cannot open '/tmp/\\xff\\xfe.png'\\x00!");
  EXPECT_STREQ(Error("").what(), "unknown error (no message)");
  EXPECT_EQ(std::string(InvalidArgumentError("caf\xc3\xa9 \xed\xa0\x80").what()),
            "caf\xc3\xa9 \\xed\\xa0\\x80");  // UTF-8 kept, a surrogate escaped
}

TEST(Hardening, ConfigIntegersOutOfTheirTypeAreRefused) {
  const auto j = nlohmann::json::parse(R"({"n": 4294967297, "m": -1})");
  int n = 0;
  expect_error<InvalidArgumentError>([&] { io::get_opt(j, "n", n, "c.json", ""); },
                                     {"c.json", "'n'", "out of range"});
  uint32_t m = 0;
  expect_error<InvalidArgumentError>([&] { io::get_opt(j, "m", m, "c.json", ""); },
                                     {"'m'", "out of range"});
  expect_error<InvalidArgumentError>([] { io::check_positive(-1e-5, 1.0, "c.json", "eps"); },
                                     {"c.json", "eps", "(0, 1]"});
  expect_error<InvalidArgumentError>(
      [] { io::check_range(int64_t(1) << 31, 1, 1024, "c.json", "layers"); },
      {"layers is 2147483648", "[1, 1024]"});
}

// ---- safetensors --------------------------------------------------------------------------------

namespace {
std::string safetensors(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 255);
  return out + header + data;
}
io::SafetensorsHeader parse_st(const std::string& bytes) {
  return io::parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                      "m.safetensors");
}
}  // namespace

TEST(Hardening, SafetensorsHeaderIsCheckedAsTheFormatSays) {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_EQ(parse_st(safetensors(ok, std::string(8, '\0'))).tensors.at("a").end, 8u);
  expect_error<InvalidArgumentError>([&] { parse_st(safetensors(ok, std::string(9, '\0'))); },
                                     {"1 bytes after the last tensor"});
  const std::string gap = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_error<InvalidArgumentError>([&] { parse_st(safetensors(gap, std::string(8, '\0'))); },
                                     {"belong to no tensor"});
  const std::string overlap = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                                  "b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  expect_error<InvalidArgumentError>([&] { parse_st(safetensors(overlap, std::string(8, '\0'))); },
                                     {"overlap"});
  const std::string deep =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":" + deep_array(50000) + ",\"data_offsets\":[0,0]}}";
  expect_error<InvalidArgumentError>([&] { parse_st(safetensors(deep, "")); }, {"nests deeper"});
  const std::string huge_dim =
      R"({"a":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})";
  expect_error<InvalidArgumentError>([&] { parse_st(safetensors(huge_dim, "")); },
                                     {"too large to address"});
  std::string lying(8, '\0');
  lying[5] = 1;  // a header length of 2^40
  expect_error<InvalidArgumentError>([&] { parse_st(lying + "{}"); }, {"runs past the end"});
}

TEST(Hardening, ShardIndexNamesPlainFilesOnly) {
  expect_error<InvalidArgumentError>(
      [] { io::parse_shard_index(R"({"weight_map":{"a":"../x.safetensors"}})", "i.json"); },
      {"i.json", "plain file name"});
  expect_error<InvalidArgumentError>(
      [] { io::parse_shard_index(R"({"weight_map":{"a":[1,2]}})", "i.json"); },
      {"not a file name", "an array of 2 values"});
  const auto idx = io::parse_shard_index(
      R"({"weight_map":{"a":"s2.safetensors","b":"s1.safetensors","c":"s2.safetensors"}})", "i");
  // (in the order of the tensor names, as the JSON object holds them)
  EXPECT_EQ(idx.shards, (std::vector<std::string>{"s2.safetensors", "s1.safetensors"}));
  EXPECT_EQ(idx.weight_map.at("b"), "s1.safetensors");
}

// ---- images
// ---------------------------------------------------------------------------------------

TEST(Hardening, PngWithASecondIhdrIsRefused) {
  if (!bgevl::test::vision_util::decoding_available())
    GTEST_SKIP() << "built without image decoding";
  // A large first IHDR, an APNG frame over all of it, then a small IHDR: the decoder sized its
  // buffer from one and wrote the frame of the other (a heap overflow).
  std::string actl = chunk("acTL", be32(1) + be32(0));
  std::string fctl =
      chunk("fcTL", be32(0) + be32(64) + be32(64) + be32(0) + be32(0) + std::string(6, '\0'));
  const std::string bad = png(ihdr(64, 64) + actl + fctl + ihdr(2, 2), 64, 64);
  expect_error<InvalidArgumentError>([&] { decode(bad); }, {"crafted", "second IHDR"});
  const vision::Image good = decode(png(ihdr(64, 64) + actl + fctl, 64, 64));
  EXPECT_EQ(good.width, 64);
  EXPECT_EQ(good.data[0], 'A');
}

TEST(Hardening, PixelLimitIsCheckedFromTheHeaderForEveryFormat) {
  if (!bgevl::test::vision_util::decoding_available())
    GTEST_SKIP() << "built without image decoding";
  // 16384 x 16384 = 268 Mpx, above twice PIL's MAX_IMAGE_PIXELS: refused before any decoding.
  std::string vp8l = std::string("\x2f", 1);
  const uint32_t bits = (16383u) | (16383u << 14);
  vp8l += std::string({char(bits & 255), char((bits >> 8) & 255), char((bits >> 16) & 255),
                       char((bits >> 24) & 255)});
  vp8l += std::string(16, '\0');
  auto le32 = [](uint32_t v) {
    return std::string({char(v & 255), char((v >> 8) & 255), char((v >> 16) & 255), char(v >> 24)});
  };
  const std::string webp =
      "RIFF" + le32(uint32_t(12 + vp8l.size())) + "WEBPVP8L" + le32(uint32_t(vp8l.size())) + vp8l;
  expect_error<InvalidArgumentError>([&] { decode(webp); }, {"16384x16384", "exceeds the limit"});
  // TIFF: IFD0 with ImageWidth and ImageLength of 20000 (LONG).
  auto le16 = [](uint16_t v) { return std::string({char(v & 255), char(v >> 8)}); };
  std::string tiff = "II*" + std::string(1, '\0') + le32(8) + le16(2);
  tiff += le16(256) + le16(4) + le32(1) + le32(20000);
  tiff += le16(257) + le16(4) + le32(1) + le32(20000);
  tiff += le32(0);
  expect_error<InvalidArgumentError>([&] { decode(tiff); }, {"20000x20000", "exceeds the limit"});
  const std::string big_png = std::string("\x89PNG\r\n\x1a\n", 8) + ihdr(20000, 20000) +
                              chunk("IDAT", zlib_stored("")) + chunk("IEND", "");
  expect_error<InvalidArgumentError>([&] { decode(big_png); },
                                     {"20000x20000", "exceeds the limit"});
  // A VP8X header ending at its canvas size (30 bytes): read exactly, not one byte past (a
  // finding of fuzz_image_decode under ASan).
  {
    std::string vp8x = "RIFF" + le32(22) + "WEBPVP8X" + le32(10) + std::string(4, '\0');
    vp8x += std::string("\xff\x3f\x00\xff\x3f\x00", 6);          // 16384 x 16384
    const std::vector<uint8_t> exact(vp8x.begin(), vp8x.end());  // its own allocation of 30
    ASSERT_EQ(exact.size(), 30u);
    const auto h = vision::probe_image(exact.data(), exact.size());
    EXPECT_EQ(h.width, 16384);
    EXPECT_EQ(h.height, 16384);
    expect_error<InvalidArgumentError>([&] { decode(vp8x); }, {"exceeds the limit"});
  }
  // A WebP without a readable size is refused too, not handed to the decoder.
  expect_error<InvalidArgumentError>(
      [&] { decode("RIFF" + le32(30) + "WEBPJUNK" + std::string(22, 'x')); }, {"crafted"});
}

// ---- preprocessor configs
// ------------------------------------------------------------------------

TEST(Hardening, PreprocessorConfigValuesAreRangeChecked) {
  TempDir d;
  struct Case {
    std::string json, key, why;
  };
  const std::vector<Case> cases = {
      {R"({"size": {"shortest_edge": 100000}})", "size.shortest_edge", "limit of 8192"},
      {R"({"crop_size": 100000})", "crop_size", "limit of 8192"},
      {R"({"image_std": [0.5, 0, 0.5]})", "image_std", "must not be 0"},
      {R"({"image_mean": [1e300, 0, 0]})", "image_mean[0]", "finite"},
      {R"({"rescale_factor": 1e39})", "rescale_factor", "finite"},
  };
  for (const auto& c : cases) {
    const std::string p = d.write("preprocessor_config.json", c.json);
    expect_error<InvalidArgumentError>([&] { vision::load_clip_image_config(p); },
                                       {p, c.key, c.why});
    expect_error<InvalidArgumentError>([&] { vision::load_llava_image_config(p); },
                                       {p, c.key, c.why});
  }
  const std::string grid =
      d.write("preprocessor_config.json",
              R"({"crop_size": 336, "image_grid_pinpoints": [[336, 672], [32768, 32768]]})");
  expect_error<InvalidArgumentError>([&] { vision::load_llava_image_config(grid); },
                                     {"image_grid_pinpoints[1]", "tiles", "limit of 64"});
}
