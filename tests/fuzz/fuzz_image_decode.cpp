// The image decoders (vision::decode_bytes: JPEG through libjpeg, PNG through libpng with APNG,
// interlacing and 16-bit, BMP/WebP/TIFF through OpenCV and libtiff) and the header probe, then,
// for an image that decodes, the pixel path: to_rgb, resize_bicubic to a size taken from the
// input's last bytes, clip_preprocess with the CLIP fixture's preprocessor_config.json and
// llava_preprocess with the LLaVA-NeXT fixture's. Both configs are used at their sides divided by
// kScale (CLIP: 14 px crops instead of 224; LLaVA-NeXT: 21 px tiles instead of 336, pre-resize
// 32 instead of 512) -- the same code at 1/256 of the arithmetic, which the coverage
// instrumentation makes dominate everything else -- except for one input in kFullSizeEvery (by a
// hash of its bytes) and always with BGEVL_FUZZ_FULL_SIZE=1, which run the fixtures' sizes.
// Sizes: the decoders accept up to PIL's 179 Mpx, which would make each run take seconds, so
// files whose header says more than kMaxDecodePixels (4 Mpx) are skipped unless they are over
// the decoders' own limit (which must refuse them at once), and decoded images over
// kMaxProcessPixels (1 Mpx) are not processed.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "fuzz_util.h"
#include "vision/image.h"
#include "vision/llava_processor.h"

namespace {

using namespace bgevl;
namespace fz = bgevl::fuzz;

constexpr double kMaxDecodePixels = 4.0 * 1024 * 1024;
constexpr double kMaxProcessPixels = 1024.0 * 1024;
constexpr double kDecoderMaxPixels = 2.0 * 89478485;  // vision/decode_detail.h: kMaxPixels
constexpr int kScale = 16;
constexpr uint32_t kFullSizeEvery = 4096;

struct Processors {
  vision::ClipImageConfig clip;
  vision::LlavaImageConfig llava;
  int presize = 512;
};

int scaled(int side) { return std::max(1, side / kScale); }

// [0]: the fixtures' configs; [1]: scaled down.
const Processors* processors() {
  static const Processors* p = [] {
    auto* x = new Processors[2];
    x[0].clip = vision::load_clip_image_config(
        fz::fixture("clip/tiny-fp16-quickgelu/preprocessor_config.json"));
    x[0].llava = vision::load_llava_image_config(
        fz::fixture("llava/tiny-llava-next/preprocessor_config.json"));
    x[1] = x[0];
    auto& c = x[1].clip;
    c.shortest_edge = scaled(c.shortest_edge);
    c.crop_height = scaled(c.crop_height);
    c.crop_width = scaled(c.crop_width);
    auto& l = x[1].llava;
    l.shortest_edge = scaled(l.shortest_edge);
    l.crop_height = scaled(l.crop_height);
    l.crop_width = scaled(l.crop_width);
    for (auto& [h, w] : l.grid_pinpoints) {
      h = scaled(h);
      w = scaled(w);
    }
    x[1].presize = (512 + kScale - 1) / kScale;
    return x;
  }();
  return p;
}

bool full_size(const uint8_t* data, size_t size) {
  static const bool always = [] {
    const char* v = std::getenv("BGEVL_FUZZ_FULL_SIZE");
    return v && *v == '1';
  }();
  uint32_t h = 2166136261u;  // FNV-1a
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 16777619u;
  return always || h % kFullSizeEvery == 0;
}

bool same_shape(const vision::Image& im) {
  return im.width > 0 && im.height > 0 && im.channels == vision::channels_of(im.mode) &&
         im.data.size() == size_t(im.width) * size_t(im.height) * size_t(im.channels);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Processors& p = processors()[full_size(data, size) ? 0 : 1];
  const vision::ImageHeader hdr = vision::probe_image(data, size);
  (void)vision::mime_type(hdr);
  BGEVL_FUZZ_CHECK(hdr.width >= 0 && hdr.height >= 0);
  const double header_pixels = double(hdr.width) * double(hdr.height);
  if (header_pixels > kMaxDecodePixels && header_pixels <= kDecoderMaxPixels) return 0;

  fz::guarded([&] {
    const vision::Image im = vision::decode_bytes(data, size, "<fuzz input>");
    BGEVL_FUZZ_CHECK(same_shape(im));
    if (double(im.width) * double(im.height) > kMaxProcessPixels) return;

    const vision::Image rgb = vision::to_rgb(im);
    BGEVL_FUZZ_CHECK(same_shape(rgb) && rgb.channels == 3 && rgb.width == im.width &&
                     rgb.height == im.height);

    const int tw = 1 + data[size - 1] % 48, th = 1 + data[size - 2] % 48;  // size >= 2 here
    fz::guarded([&] {
      const vision::Image r = vision::resize_bicubic(im, tw, th);
      BGEVL_FUZZ_CHECK(same_shape(r) && r.width == tw && r.height == th &&
                       r.channels == im.channels);
    });

    fz::guarded([&] {
      std::vector<float> out(size_t(3) * p.clip.crop_height * p.clip.crop_width);
      vision::clip_preprocess(im, p.clip, out.data());
      for (const float v : out) BGEVL_FUZZ_CHECK(std::isfinite(v));
    });

    fz::guarded([&] {
      const vision::LlavaPixels px = vision::llava_preprocess(im, p.llava, p.presize);
      BGEVL_FUZZ_CHECK(px.num_tiles >= 2);
      BGEVL_FUZZ_CHECK(p.presize == 0 ||
                       (px.image_height == p.presize && px.image_width == p.presize));
      BGEVL_FUZZ_CHECK(px.tile_height == p.llava.crop_height &&
                       px.tile_width == p.llava.crop_width);
      BGEVL_FUZZ_CHECK(px.data.size() ==
                       size_t(px.num_tiles) * 3 * size_t(px.tile_height) * size_t(px.tile_width));
      for (const float v : px.data) BGEVL_FUZZ_CHECK(std::isfinite(v));
    });
  });
  return 0;
}
