// Every JSON config reader on the same input: the generic reader (io::parse_json, read_json_file,
// brief, read_model_type), both image processors' preprocessor_config.json readers
// (vision::load_clip_image_config, load_llava_image_config, and the models' load_image_config
// that check them against the fixtures' config.json) and both families' config.json readers
// (clip::load_config, llava_next::load_config). The input is written to a per-process file that
// each reader opens. A preprocessor config a reader accepts must have sides within the readers'
// limits, and a small one is run through its processor on a tiny image.
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "io/json.h"
#include "models/clip/config.h"
#include "models/llava_next/config.h"
#include "vision/image.h"
#include "vision/llava_processor.h"

namespace {

using namespace bgevl;
namespace fz = bgevl::fuzz;

constexpr int kMaxSide = 8192;  // vision/config_json.h: the readers' limit on any side

struct Fixtures {
  clip::Config clip_model;
  llava_next::Config llava_model;
  vision::Image image;  // 7x5 RGB
  std::string path;
};

const Fixtures& fixtures() {
  static const Fixtures* f = [] {
    auto* x = new Fixtures;
    x->clip_model = clip::load_config(fz::fixture("clip/tiny-fp16-quickgelu/config.json"));
    x->llava_model = llava_next::load_config(fz::fixture("llava/tiny-llava-next/config.json"));
    std::vector<uint8_t> px(7 * 5 * 3);
    for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i * 37);
    x->image = vision::from_pixels(px.data(), 5, 7, 3);
    x->path = (fz::scratch() / "config.json").string();
    return x;
  }();
  return *f;
}

void check_clip(const vision::ClipImageConfig& c) {
  BGEVL_FUZZ_CHECK(c.shortest_edge >= 1 && c.shortest_edge <= kMaxSide);
  BGEVL_FUZZ_CHECK(c.crop_height >= 1 && c.crop_height <= kMaxSide);
  BGEVL_FUZZ_CHECK(c.crop_width >= 1 && c.crop_width <= kMaxSide);
  BGEVL_FUZZ_CHECK(c.resample == 3 && c.do_center_crop);
  if (int64_t(c.crop_height) * c.crop_width > 64 * 64) return;  // small enough to run quickly
  std::vector<float> out(size_t(3) * c.crop_height * c.crop_width);
  fz::guarded([&] { vision::clip_preprocess(fixtures().image, c, out.data()); });
}

void check_llava(const vision::LlavaImageConfig& c) {
  BGEVL_FUZZ_CHECK(c.shortest_edge >= 1 && c.shortest_edge <= kMaxSide);
  BGEVL_FUZZ_CHECK(c.crop_height >= 1 && c.crop_height <= kMaxSide);
  BGEVL_FUZZ_CHECK(c.crop_width >= 1 && c.crop_width <= kMaxSide);
  BGEVL_FUZZ_CHECK(!c.grid_pinpoints.empty());
  int64_t max_area = 0;
  for (const auto& [h, w] : c.grid_pinpoints) {
    BGEVL_FUZZ_CHECK(h >= 1 && w >= 1 && h <= 32768 && w <= 32768);
    max_area = std::max(max_area, int64_t(h) * w);
  }
  // Small enough to run quickly: tiles, canvas and base image of at most a few thousand pixels.
  const int64_t tile = int64_t(c.crop_height) * c.crop_width;
  if (tile > 32 * 32 || max_area > 128 * 128 ||
      int64_t(c.shortest_edge) * c.shortest_edge > 64 * 64 || c.grid_pinpoints.size() > 16)
    return;
  fz::guarded([&] {
    const auto px = vision::llava_preprocess(fixtures().image, c, 16);
    BGEVL_FUZZ_CHECK(px.num_tiles >= 1);
    BGEVL_FUZZ_CHECK(px.data.size() ==
                     size_t(px.num_tiles) * 3 * size_t(px.tile_height) * size_t(px.tile_width));
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Fixtures& f = fixtures();
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  fz::guarded([&] {
    const auto j = io::parse_json(text, "<fuzz input>");
    (void)io::brief(j);
    if (j.is_object() || j.is_array()) {
      int n = 0;
      for (const auto& v : j) {
        (void)io::brief(v);
        if (++n == 16) break;
      }
    }
  });

  fz::write_file(f.path, data, size);
  fz::guarded([&] { (void)io::read_json_file(f.path, "fuzz config"); });
  fz::guarded([&] { (void)io::read_model_type(f.path); });
  fz::guarded([&] { check_clip(vision::load_clip_image_config(f.path)); });
  fz::guarded([&] { check_llava(vision::load_llava_image_config(f.path)); });
  fz::guarded([&] { check_clip(clip::load_image_config(f.path, f.clip_model)); });
  fz::guarded([&] { check_llava(llava_next::load_image_config(f.path, f.llava_model)); });
  fz::guarded([&] { (void)clip::load_config(f.path); });
  fz::guarded([&] {
    const auto c = llava_next::load_config(f.path);
    (void)c.vision_layers_used();
  });
  return 0;
}
