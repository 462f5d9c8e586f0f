// transformers 4.45.2's CLIPImageProcessor (the slow, PIL-based one) for a single image, and the
// preprocessor_config.json reader. What the reference does, step by step (image_processing_clip.py,
// image_transforms.py):
//   convert_to_rgb     image.convert("RGB") unless already RGB
//   resize             get_resize_output_image_size(shortest_edge, default_to_square=False):
//                      short side = N, long side = int(N * long / short); PIL bicubic on uint8
//   center_crop        top = (h - crop_h) // 2, left = (w - crop_w) // 2 (floor division); where
//                      the image is smaller than the crop it is zero-padded (centred, the extra
//                      row/column at the end)
//   rescale            (uint8 as float64 * rescale_factor).astype(float32)
//   normalize          (x - mean) / std in float32 (mean and std cast to float32)
//   channels first     (3, crop_h, crop_w)
// Only the cropped window of the resized image is computed: every output byte of the resampler
// is independent of the others, so the result equals resizing the whole image first.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bgevl/errors.h"
#include "vision/config_json.h"
#include "vision/image.h"
#include "vision/resample_detail.h"

namespace bgevl::vision {

namespace {

using nlohmann::json;
using namespace config_json;

// Python's floor division.
int floordiv2(long long a) { return int(a >= 0 ? a / 2 : -((-a + 1) / 2)); }

}  // namespace

ClipImageConfig load_clip_image_config(const std::string& path) {
  const json j = read_config(path);

  ClipImageConfig c;
  c.do_resize = get_bool(j, path, "do_resize", c.do_resize);
  if (auto it = j.find("size"); it != j.end() && !it->is_null()) {
    if (it->is_number()) {
      c.shortest_edge = get_side(*it, path, "size");
    } else if (it->is_object()) {
      if (it->contains("shortest_edge")) {
        c.shortest_edge = get_side(it->at("shortest_edge"), path, "size.shortest_edge");
      } else if (it->contains("height") && it->contains("width")) {
        bad_key(path, "size",
                "{\"height\", \"width\"} (a fixed-size resize) is not supported; bgevl supports "
                "CLIP's {\"shortest_edge\": N}");
      } else {
        bad_key(path, "size", "must contain 'shortest_edge', got " + io::brief(*it));
      }
    } else {
      bad_key(path, "size", "must be an integer or {\"shortest_edge\": N}, got " + io::brief(*it));
    }
  }
  if (get_bool(j, path, "use_square_size", false))
    bad_key(path, "use_square_size", "true (a square resize) is not supported");
  check_resample(j, path);
  c.resample = 3;
  c.do_center_crop = get_bool(j, path, "do_center_crop", c.do_center_crop);
  if (!c.do_center_crop)
    bad_key(path, "do_center_crop",
            "false is not supported (the model needs a fixed input size, given by crop_size)");
  read_crop_size(j, path, c.crop_height, c.crop_width);
  read_rescale_normalize(j, path, c);
  c.do_convert_rgb = get_bool(j, path, "do_convert_rgb", c.do_convert_rgb);
  return c;
}

std::array<float, 3 * 256> clip_pixel_table(const ClipImageConfig& cfg) {
  std::array<float, 3 * 256> lut{};
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      float x = cfg.do_rescale ? static_cast<float>(double(v) * cfg.rescale_factor)
                               : static_cast<float>(v);
      if (cfg.do_normalize) x = (x - cfg.mean[size_t(c)]) / cfg.std[size_t(c)];
      lut[size_t(c) * 256 + size_t(v)] = x;
    }
  }
  return lut;
}

void clip_preprocess_u8(const Image& im, const ClipImageConfig& cfg, uint8_t* out) {
  BGEVL_CHECK_ARG(out != nullptr, "clip_preprocess: null output buffer");
  BGEVL_CHECK_ARG(cfg.resample == 3,
                  "clip_preprocess: only resample=3 (bicubic) is supported, got ", cfg.resample);
  BGEVL_CHECK_ARG(cfg.do_center_crop,
                  "clip_preprocess: do_center_crop=false is not supported (fixed output size)");
  BGEVL_CHECK_ARG(cfg.crop_height > 0 && cfg.crop_width > 0 && cfg.shortest_edge > 0,
                  "clip_preprocess: sizes must be positive");
  // convert_to_rgb. With do_convert_rgb false the reference would keep other modes, which the
  // 3-channel model cannot take: bgevl always converts.
  const Image* rgb = &im;
  Image converted;
  if (im.mode != PilMode::RGB) {
    converted = to_rgb(im);
    rgb = &converted;
  } else {
    BGEVL_CHECK_ARG(im.width > 0 && im.height > 0 && im.channels == 3 &&
                        im.data.size() == size_t(im.width) * size_t(im.height) * 3,
                    "clip_preprocess: malformed RGB image (", im.width, "x", im.height, "x",
                    im.channels, ", ", im.data.size(), " bytes)");
  }
  const int H = rgb->height, W = rgb->width;

  // get_resize_output_image_size(default_to_square=False)
  long long rh = H, rw = W;
  if (cfg.do_resize) {
    const bool w_short = W <= H;
    const long long s = w_short ? W : H, l = w_short ? H : W;
    const long long new_short = cfg.shortest_edge;
    const long long new_long = static_cast<long long>(double(new_short * l) / double(s));
    BGEVL_CHECK_ARG(new_long > 0 && new_long <= std::numeric_limits<int>::max() / 4,
                    "clip_preprocess: resized size out of range for a ", W, "x", H, " image");
    rw = w_short ? new_short : new_long;
    rh = w_short ? new_long : new_short;
  }
  const int ch = cfg.crop_height, cw = cfg.crop_width;
  const int top = floordiv2(rh - ch), left = floordiv2(rw - cw);
  // The part of the crop window that lies inside the resized image; the rest is zero padding.
  const int y0 = std::max(0, top), y1 = int(std::min<long long>(rh, (long long)top + ch));
  const int x0 = std::max(0, left), x1 = int(std::min<long long>(rw, (long long)left + cw));
  const int ny = std::max(0, y1 - y0), nx = std::max(0, x1 - x0);

  thread_local std::vector<uint8_t> window;
  window.resize(size_t(ny) * size_t(nx) * 3);
  if (ny > 0 && nx > 0) {
    resize_bicubic_window(rgb->data.data(), W, H, 3, int(rw), int(rh), x0, y0, nx, ny,
                          window.data(), size_t(nx) * 3);
  }

  // The crop as CHW bytes: the window's pixels, zeros where the crop lies outside the image.
  const size_t plane = size_t(ch) * size_t(cw);
  for (int c = 0; c < 3; ++c) {
    uint8_t* o = out + size_t(c) * plane;
    for (int y = 0; y < ch; ++y) {
      uint8_t* orow = o + size_t(y) * cw;
      const int sy = top + y;  // row in the resized image
      if (sy < y0 || sy >= y1) {
        std::memset(orow, 0, size_t(cw));
        continue;
      }
      const uint8_t* wrow = window.data() + size_t(sy - y0) * nx * 3 + c;
      const int xa = x0 - left, xb = x1 - left;  // crop columns covered by the window
      for (int x = 0; x < xa; ++x) orow[x] = 0;
      for (int x = xa; x < xb; ++x) orow[x] = wrow[size_t(x - xa) * 3];
      for (int x = std::max(xa, xb); x < cw; ++x) orow[x] = 0;
    }
  }
}

void clip_preprocess(const Image& im, const ClipImageConfig& cfg, float* out) {
  BGEVL_CHECK_ARG(out != nullptr, "clip_preprocess: null output buffer");
  const size_t n = 3 * size_t(std::max(cfg.crop_height, 0)) * size_t(std::max(cfg.crop_width, 0));
  thread_local std::vector<uint8_t> crop;
  crop.resize(n);
  clip_preprocess_u8(im, cfg, crop.data());
  // rescale + normalize as a per-channel table over the 256 byte values.
  const auto lut = clip_pixel_table(cfg);
  const size_t plane = n / 3;
  for (size_t c = 0; c < 3; ++c) {
    const float* t = lut.data() + c * 256;
    const uint8_t* src = crop.data() + c * plane;
    float* o = out + c * plane;
    for (size_t i = 0; i < plane; ++i) o[i] = t[src[i]];
  }
}

}  // namespace bgevl::vision
