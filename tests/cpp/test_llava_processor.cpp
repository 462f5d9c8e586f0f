// The BGE-VL-MLLM image path (src/vision/llava_processor.*): Image.open(p).resize((512, 512))
// .convert("RGB") + transformers 4.45.2's LlavaNextImageProcessor. Expected values come from
// tests/reference/gen_llava_pixel_fixtures.py (tests/fixtures/llava/).
//
// Every value of every case is checked: each output element is mapped back to the byte u8 with
// |value - reference_table[channel][u8]| <= 1e-6 and the SHA-256 of those bytes must equal the
// reference's (the generator asserts that the reference's tensor is exactly the table at those
// bytes). Bit-exactness is checked separately through the SHA-256 of the float32 tensor; sampled
// values and two full small-tile tensors give readable diffs.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bgevl/errors.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "vision/image.h"
#include "vision/llava_processor.h"

using namespace bgevl::vision;
using bgevl::test::fixtures;
using bgevl::test::kPixelTol;
using bgevl::test::read_json;
using bgevl::test::scratch_dir;
using bgevl::test::write_bytes;
using nlohmann::json;

namespace {

// SHA-256 of tensors, for comparing them whole with the fixture's digests.

std::string sha256_hex(const void* data, size_t n) {
  return bgevl::io::sha256_hex(std::string(static_cast<const char*>(data), n));
}

// ---- fixture access ----------------------------------------------------------------------------

const json& cases_json() {
  static const json j = read_json(fixtures("llava/pixel_cases.json"));
  return j;
}

// The configs of the fixture, loaded through load_llava_image_config ("mistral" from the real
// file, the others written to a scratch folder first).
const LlavaImageConfig& fixture_config(const std::string& name) {
  static std::map<std::string, LlavaImageConfig> loaded;
  auto it = loaded.find(name);
  if (it != loaded.end()) return it->second;
  std::string path = fixtures("llava/preprocessor_config.json");
  if (name != "mistral") {
    static const auto dir = scratch_dir("llava_cfg");
    path = (dir / (name + ".json")).string();
    write_bytes(path, cases_json().at("configs").at(name).dump());
  }
  return loaded.emplace(name, load_llava_image_config(path)).first->second;
}

using Table = std::array<std::vector<double>, 3>;
Table value_table(const std::string& config) {
  Table t;
  const json& j = cases_json().at("value_tables").at(config);
  for (int c = 0; c < 3; ++c) t[size_t(c)] = j.at(size_t(c)).get<std::vector<double>>();
  return t;
}

bool decoding_available() {
  static const bool available = [] {
    try {
      decode_file(fixtures("images/tiny_2x2.png"));
      return true;
    } catch (const bgevl::Error& e) {
      return std::string(e.what()).find("no image decoding") == std::string::npos;
    }
  }();
  return available;
}
#define REQUIRE_DECODING() \
  if (!decoding_available()) GTEST_SKIP() << "built without image decoding"

struct CaseResult {
  LlavaPixels px;
  std::string float_sha, uint8_sha;
  double max_table_diff = 0;  // over every element: distance to the nearest table value
  size_t off_table = 0;       // elements farther than kPixelTol from every table value
};

// Runs one fixture case once (several tests look at the result).
const CaseResult& run_case(const json& c) {
  static std::map<std::string, CaseResult> done;
  const std::string name = c.at("name");
  auto it = done.find(name);
  if (it != done.end()) return it->second;
  CaseResult r;
  const Image im = decode_file(fixtures(c.at("image").get<std::string>()));
  r.px = llava_preprocess(im, fixture_config(c.at("config")), c.at("presize").get<int>());
  const auto& d = r.px.data;
  r.float_sha = sha256_hex(d.data(), d.size() * sizeof(float));
  // Map every value back to its byte through the reference's table.
  const Table t = value_table(c.at("config"));
  const size_t plane = size_t(r.px.tile_height) * size_t(r.px.tile_width);
  std::vector<uint8_t> u8(d.size());
  for (size_t i = 0; i < d.size(); ++i) {
    const auto& tc = t[(i / plane) % 3];
    const double x = d[i];
    size_t k = size_t(std::lower_bound(tc.begin(), tc.end(), x) - tc.begin());
    if (k == tc.size() || (k > 0 && x - tc[k - 1] < tc[k] - x)) k = k == 0 ? 0 : k - 1;
    const double diff = std::fabs(tc[k] - x);
    r.max_table_diff = std::max(r.max_table_diff, diff);
    if (!(diff <= kPixelTol)) ++r.off_table;
    u8[i] = uint8_t(k);
  }
  r.uint8_sha = sha256_hex(u8.data(), u8.size());
  return done.emplace(name, std::move(r)).first->second;
}

}  // namespace

TEST(LlavaPixels, EveryValueOfEveryCaseMatchesReference) {
  REQUIRE_DECODING();
  const json& cases = cases_json().at("cases");
  ASSERT_GE(cases.size(), 30u);
  bgevl::io::SafetensorsFile st(fixtures("llava/pixel_values.safetensors"));
  for (const json& c : cases) {
    const std::string name = c.at("name");
    SCOPED_TRACE(name);
    const CaseResult& r = run_case(c);
    if (c.contains("known_deviation")) {
      std::printf(
          "[ KNOWN    ] %s differs from the reference (max distance to the value table "
          "%g, uint8 digest %s): %s\n",
          name.c_str(), r.max_table_diff,
          r.uint8_sha == c.at("uint8_sha256").get<std::string>() ? "equal" : "differs",
          c.at("known_deviation").get<std::string>().c_str());
      continue;
    }
    const auto shape = c.at("shape").get<std::vector<int>>();
    ASSERT_EQ(r.px.num_tiles, shape[0]);
    ASSERT_EQ(r.px.tile_height, shape[2]);
    ASSERT_EQ(r.px.tile_width, shape[3]);
    ASSERT_EQ(r.px.data.size(), size_t(shape[0]) * 3 * shape[2] * shape[3]);
    EXPECT_EQ(r.px.image_height, c.at("image_size")[0].get<int>());
    EXPECT_EQ(r.px.image_width, c.at("image_size")[1].get<int>());
    // every element within 1e-6 of the reference
    EXPECT_EQ(r.off_table, 0u) << "max distance to the value table " << r.max_table_diff;
    EXPECT_EQ(r.uint8_sha, c.at("uint8_sha256").get<std::string>());
    // sampled values, for a readable diff
    auto idx = st.load(name + ".idx", torch::kInt64, torch::kCPU);
    auto val = st.load(name + ".val", torch::kFloat32, torch::kCPU);
    const int64_t* ip = idx.data_ptr<int64_t>();
    const float* vp = val.data_ptr<float>();
    double max_diff = 0;
    for (int64_t k = 0; k < idx.numel(); ++k) {
      ASSERT_LT(size_t(ip[k]), r.px.data.size());
      max_diff = std::max(max_diff, std::fabs(double(r.px.data[size_t(ip[k])]) - double(vp[k])));
    }
    EXPECT_LE(max_diff, kPixelTol) << idx.numel() << " samples";
    if (c.at("full").get<bool>()) {
      auto full = st.load(name + ".full", torch::kFloat32, torch::kCPU);
      ASSERT_EQ(size_t(full.numel()), r.px.data.size());
      const float* fp = full.data_ptr<float>();
      double m = 0;
      for (size_t i = 0; i < r.px.data.size(); ++i)
        m = std::max(m, std::fabs(double(r.px.data[i]) - double(fp[i])));
      EXPECT_LE(m, kPixelTol) << "full tensor";
    }
  }
}

// The arithmetic is replicated exactly (float64 rescale, float32 normalise), so the float32
// tensors are bit-identical to the reference's.
TEST(LlavaPixels, BitExactWithReference) {
  REQUIRE_DECODING();
  for (const json& c : cases_json().at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    if (c.contains("known_deviation")) continue;
    EXPECT_EQ(run_case(c).float_sha, c.at("float32_sha256").get<std::string>());
  }
}

TEST(LlavaPixels, TileCountsFollowTheCanvas) {
  REQUIRE_DECODING();
  for (const json& c : cases_json().at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const LlavaImageConfig& cfg = fixture_config(c.at("config"));
    const auto canvas = c.at("canvas").get<std::vector<int>>();
    const int P = cfg.crop_height;
    const int tiles = 1 + ((canvas[0] + P - 1) / P) * ((canvas[1] + P - 1) / P);
    EXPECT_EQ(run_case(c).px.num_tiles, tiles);
    // the best resolution recorded by the generator is what select_best_resolution says
    const auto best =
        select_best_resolution(c.at("image_size")[0], c.at("image_size")[1], cfg.grid_pinpoints);
    EXPECT_EQ(best.first, c.at("best_resolution")[0].get<int>());
    EXPECT_EQ(best.second, c.at("best_resolution")[1].get<int>());
    if (c.at("presize").get<int>() == 512 && c.at("config") == "mistral") {
      EXPECT_EQ(run_case(c).px.num_tiles, 5);
      EXPECT_EQ(run_case(c).px.image_height, 512);
      EXPECT_EQ(run_case(c).px.image_width, 512);
    }
  }
}

TEST(LlavaSelectBestResolution, MatchesReferenceTable) {
  const json& t = cases_json().at("select_best_resolution");
  std::map<std::string, std::vector<std::pair<int, int>>> lists;
  for (const auto& [name, pp] : t.at("pinpoint_lists").items())
    for (const auto& e : pp) lists[name].emplace_back(e[0].get<int>(), e[1].get<int>());
  size_t n = 0;
  for (const json& row : t.at("rows")) {
    const auto& pp = lists.at(row[0].get<std::string>());
    const auto got = select_best_resolution(row[1].get<int>(), row[2].get<int>(), pp);
    EXPECT_EQ(got, std::make_pair(row[3].get<int>(), row[4].get<int>()))
        << row[0] << " " << row[1] << "x" << row[2];
    ++n;
  }
  EXPECT_GE(n, 1000u);
  // Known values: a 512 square picks 672x672; ties keep the first candidate.
  const std::vector<std::pair<int, int>> mistral{
      {336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};
  EXPECT_EQ(select_best_resolution(512, 512, mistral), std::make_pair(672, 672));
  EXPECT_EQ(select_best_resolution(2, 2, mistral), std::make_pair(336, 672));
  EXPECT_EQ(select_best_resolution(512, 512, {{672, 336}, {336, 672}}), std::make_pair(672, 336));
  EXPECT_THROW(select_best_resolution(512, 512, {}), bgevl::InvalidArgumentError);
  EXPECT_THROW(select_best_resolution(0, 512, mistral), bgevl::InvalidArgumentError);
}

TEST(LlavaPixels, ValueTablesAreTheReferenceArithmetic) {
  // float32((float32(u8 * factor) - mean) / std), as numpy computes it.
  const LlavaImageConfig& cfg = fixture_config("mistral");
  const Table t = value_table("mistral");
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) {
      const float x = float(double(v) * cfg.rescale_factor);
      ASSERT_EQ(double((x - cfg.mean[size_t(c)]) / cfg.std[size_t(c)]), t[size_t(c)][size_t(v)]);
    }
}

TEST(LlavaPixels, SyntheticImagesAndPresize) {
  LlavaImageConfig cfg;  // llava-v1.6 values
  std::vector<uint8_t> px(size_t(300) * 200 * 3);
  for (size_t i = 0; i < px.size(); i += 3) {
    px[i] = 10;
    px[i + 1] = 128;
    px[i + 2] = 250;
  }
  const Image im = from_pixels(px.data(), 200, 300, 3);
  // presize 512: five tiles of a constant image
  LlavaPixels r = llava_preprocess(im, cfg);
  EXPECT_EQ(r.num_tiles, 5);
  EXPECT_EQ(r.image_height, 512);
  EXPECT_EQ(r.image_width, 512);
  const uint8_t vals[3] = {10, 128, 250};
  for (int c = 0; c < 3; ++c) {
    const float want = (float(double(vals[c]) * cfg.rescale_factor) - cfg.mean[c]) / cfg.std[c];
    for (int t = 0; t < 5; ++t)
      for (size_t i = 0; i < size_t(336) * 336; i += 97)
        ASSERT_EQ(r.data[(size_t(t) * 3 + c) * 336 * 336 + i], want) << t << " " << c;
  }
  // presize 0: 200x300 -> 336x672 target, resized 336x504, padded by 84 columns both sides:
  // tile 1 starts with 84 black columns, tile 2 ends with them.
  r = llava_preprocess(im, cfg, 0);
  EXPECT_EQ(r.num_tiles, 3);
  EXPECT_EQ(r.image_height, 200);
  EXPECT_EQ(r.image_width, 300);
  const float black = (0.f - cfg.mean[0]) / cfg.std[0];
  const float red = (float(10 * cfg.rescale_factor) - cfg.mean[0]) / cfg.std[0];
  const size_t plane = size_t(336) * 336;
  EXPECT_EQ(r.data[1 * 3 * plane + 83], black);
  EXPECT_EQ(r.data[1 * 3 * plane + 84], red);
  EXPECT_EQ(r.data[2 * 3 * plane + 335 - 84], red);
  EXPECT_EQ(r.data[2 * 3 * plane + 335 - 83], black);
  // presize equal to the size: nothing resized before the processor
  const Image sq = from_pixels(px.data(), 200, 200, 3);
  const LlavaPixels a = llava_preprocess(sq, cfg, 200), b = llava_preprocess(sq, cfg, 0);
  EXPECT_EQ(a.data, b.data);
  // other modes are converted: L == its RGB expansion
  std::vector<uint8_t> grey(size_t(40) * 30);
  for (size_t i = 0; i < grey.size(); ++i) grey[i] = uint8_t(i * 7);
  const Image l = from_pixels(grey.data(), 30, 40, 1);
  EXPECT_EQ(llava_preprocess(l, cfg).data, llava_preprocess(to_rgb(l), cfg).data);
  EXPECT_EQ(llava_preprocess(l, cfg, 0).data, llava_preprocess(to_rgb(l), cfg, 0).data);
}

TEST(LlavaPixels, BadArguments) {
  LlavaImageConfig cfg;
  std::vector<uint8_t> px(size_t(8) * 8 * 3, 7);
  const Image im = from_pixels(px.data(), 8, 8, 3);
  EXPECT_THROW(llava_preprocess(im, cfg, -1), bgevl::InvalidArgumentError);
  EXPECT_THROW(llava_preprocess(Image{}, cfg), bgevl::InvalidArgumentError);
  LlavaImageConfig bad = cfg;
  bad.grid_pinpoints.clear();
  EXPECT_THROW(llava_preprocess(im, bad), bgevl::InvalidArgumentError);
  bad = cfg;
  bad.grid_pinpoints = {{0, 336}};
  EXPECT_THROW(llava_preprocess(im, bad), bgevl::InvalidArgumentError);
  bad = cfg;
  bad.resample = 2;
  EXPECT_THROW(llava_preprocess(im, bad), bgevl::InvalidArgumentError);
  // do_center_crop false: fine while every tile resizes to one size, an error otherwise (the
  // reference cannot stack them either)
  bad = cfg;
  bad.do_center_crop = false;
  const LlavaPixels ok = llava_preprocess(im, bad);
  EXPECT_EQ(ok.num_tiles, 5);
  EXPECT_EQ(ok.tile_height, 336);
  EXPECT_EQ(ok.tile_width, 336);
  EXPECT_EQ(ok.data, llava_preprocess(im, cfg).data);
  std::vector<uint8_t> wide(size_t(211) * 333 * 3, 9);
  EXPECT_THROW(llava_preprocess(from_pixels(wide.data(), 211, 333, 3), bad, 0),
               bgevl::InvalidArgumentError);  // a 336x335 tile -> 337x336
}

TEST(LlavaConfig, LoadsRealFileAndDefaults) {
  const LlavaImageConfig c = load_llava_image_config(fixtures("llava/preprocessor_config.json"));
  EXPECT_EQ(c.shortest_edge, 336);
  EXPECT_EQ(c.crop_height, 336);
  EXPECT_EQ(c.crop_width, 336);
  EXPECT_EQ(c.grid_pinpoints, (LlavaImageConfig{}.grid_pinpoints));
  EXPECT_EQ(c.rescale_factor, 0.00392156862745098);
  EXPECT_EQ(c.mean, (LlavaImageConfig{}.mean));
  EXPECT_EQ(c.std, (LlavaImageConfig{}.std));
  EXPECT_TRUE(c.do_resize && c.do_center_crop && c.do_rescale && c.do_normalize && c.do_pad &&
              c.do_convert_rgb);
  EXPECT_EQ(c.resample, 3);

  const auto dir = scratch_dir("llava_cfg_defaults");
  auto write = [&](const std::string& name, const std::string& text) {
    const auto p = dir / name;
    write_bytes(p, text);
    return p.string();
  };
  // Missing keys: LlavaNextImageProcessor's own defaults (224, not llava-v1.6's 336).
  LlavaImageConfig d = load_llava_image_config(write("empty.json", "{}"));
  EXPECT_EQ(d.shortest_edge, 224);
  EXPECT_EQ(d.crop_height, 224);
  EXPECT_EQ(d.crop_width, 224);
  EXPECT_EQ(d.grid_pinpoints, (LlavaImageConfig{}.grid_pinpoints));
  EXPECT_EQ(d.rescale_factor, 1.0 / 255.0);
  d = load_llava_image_config(write("ints.json",
                                    R"({"size": 100, "crop_size": 90, "do_pad": false,
                                        "image_grid_pinpoints": [[90, 180], [180.0, 90]],
                                        "image_mean": 0.5, "unknown": {"x": 1}})"));
  EXPECT_EQ(d.shortest_edge, 100);
  EXPECT_EQ(d.crop_height, 90);
  EXPECT_EQ(d.crop_width, 90);
  EXPECT_FALSE(d.do_pad);
  EXPECT_EQ(d.grid_pinpoints, (std::vector<std::pair<int, int>>{{90, 180}, {180, 90}}));
  EXPECT_EQ(d.mean, (std::array<float, 3>{0.5f, 0.5f, 0.5f}));
}

TEST(LlavaConfig, ErrorsNameFileAndKey) {
  EXPECT_THROW(load_llava_image_config("/no/such/preprocessor_config.json"),
               bgevl::FileNotFoundError);
  const auto dir = scratch_dir("llava_cfg_bad");
  struct Bad {
    const char* json;
    const char* key;
  };
  for (Bad b :
       {Bad{R"({"size": {"shortest_edge": 336)", "not valid JSON"}, Bad{R"([1, 2])", "object"},
        Bad{R"({"resample": 2})", "resample"}, Bad{R"({"resample": "bicubic"})", "resample"},
        Bad{R"({"size": {"height": 336, "width": 336}})", "size"}, Bad{R"({"size": -3})", "size"},
        Bad{R"({"size": {"shortest_edge": 0}})", "size.shortest_edge"},
        Bad{R"({"crop_size": {"shortest_edge": 336}})", "crop_size"},
        Bad{R"({"crop_size": {"height": 336, "width": "x"}})", "crop_size.width"},
        Bad{R"({"image_grid_pinpoints": []})", "image_grid_pinpoints"},
        Bad{R"({"image_grid_pinpoints": "anyres"})", "image_grid_pinpoints"},
        Bad{R"({"image_grid_pinpoints": [[336, 672], [672]]})", "image_grid_pinpoints[1]"},
        Bad{R"({"image_grid_pinpoints": [[336, -672]]})", "image_grid_pinpoints[0]"},
        Bad{R"({"image_grid_pinpoints": [[336.5, 672]]})", "image_grid_pinpoints[0]"},
        Bad{R"({"image_mean": [0.5, 0.5]})", "image_mean"},
        Bad{R"({"image_std": ["a", 1, 2]})", "image_std"},
        Bad{R"({"rescale_factor": "1/255"})", "rescale_factor"},
        Bad{R"({"do_pad": "yes"})", "do_pad"}, Bad{R"({"do_resize": 1})", "do_resize"}}) {
    const auto p = dir / "bad_config.json";
    write_bytes(p, b.json);
    try {
      load_llava_image_config(p.string());
      ADD_FAILURE() << "no exception for " << b.json;
    } catch (const bgevl::InvalidArgumentError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("bad_config.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(b.key), std::string::npos) << b.json << " -> " << msg;
    }
  }
}

// Throughput of decode + 512 resize + anyres for one JPEG, single thread (default: the 640x427
// rocket.jpg; BGEVL_BENCH_JPEG names another, e.g. a 640x480 photo). Run with
// --gtest_also_run_disabled_tests --gtest_filter='*LlavaBench*'.
TEST(LlavaBench, DISABLED_PreprocessThroughput) {
  REQUIRE_DECODING();
  const char* env = std::getenv("BGEVL_BENCH_JPEG");
  const std::string path = env ? env : fixtures("images/rocket.jpg");
  const std::string bytes = bgevl::test::read_bytes(path);
  const LlavaImageConfig cfg = load_llava_image_config(fixtures("llava/preprocessor_config.json"));
  const int n = 100;
  double t_dec = 0, t_pre = 0;
  int w = 0, h = 0;
  for (int i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    const Image im =
        decode_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
    auto t1 = std::chrono::steady_clock::now();
    const LlavaPixels r = llava_preprocess(im, cfg);
    auto t2 = std::chrono::steady_clock::now();
    ASSERT_EQ(r.num_tiles, 5);
    w = im.width;
    h = im.height;
    t_dec += std::chrono::duration<double>(t1 - t0).count();
    t_pre += std::chrono::duration<double>(t2 - t1).count();
  }
  std::printf("%dx%d: decode %.3f ms, 512 resize + anyres %.3f ms, total %.1f images/s\n", w, h,
              1e3 * t_dec / n, 1e3 * t_pre / n, n / (t_dec + t_pre));
}
