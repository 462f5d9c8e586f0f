// The BGE-VL-MLLM image path without libtorch: the reference's
//   Image.open(p).resize((512, 512)).convert("RGB")
// followed by transformers 4.45.2's slow LlavaNextImageProcessor.preprocess
// (models/llava_next/image_processing_llava_next.py, image_processing_utils.py,
// image_transforms.py). What the reference does, step by step, for one RGB uint8 image (H, W):
//   image_sizes          (H, W) of the image given to the processor (512x512 after the resize)
//   select_best_resolution over image_grid_pinpoints [(h, w), ...] (float64 scale = min(w / W,
//                        h / H); effective = min(int(W*scale) * int(H*scale), W*H); largest
//                        effective, then least waste w*h - effective; the first one wins ties)
//   _resize_for_patching _get_patch_output_size: if w/W < h/H: (min(ceil(H * (w/W)), h), w) else
//                        (h, min(ceil(W * (h/H)), w)); PIL bicubic on uint8
//   _pad_for_patching    paste = ((h - nh) // 2, (w - nw) // 2), zero padding of `paste` on BOTH
//                        sides: an odd difference leaves the canvas one pixel short of the
//                        target (671 instead of 672), never centred with an extra pixel
//   divide_to_patches    row-major tiles of crop_size["height"] squared; the last row/column is
//                        smaller when the canvas is one pixel short (336x335 tiles)
//   base image           resize(image, (shortest_edge, shortest_edge)): squashed, bicubic,
//                        prepended before the tiles
//   _preprocess per tile (CLIP's): resize shortest edge to size["shortest_edge"] (long side
//                        int(se * long / short); a no-op for se x se tiles, 336x335 -> 337x336),
//                        center_crop (top = (h - ch) // 2; zero padding where too small),
//                        rescale (uint8 * factor in float64, then float32), normalize
//                        ((x - mean) / std in float32), channels first
// Each output value is a function of (channel, uint8 value): the float stage is a 3 x 256 table.
// Batching (_pad_for_batching, do_pad) appends all-zero tiles (0.0, not normalised black) up to
// the largest tile count of the batch: that is the caller's business, see llava_processor.h.
#include "vision/llava_processor.h"

#include <algorithm>
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
#include "vision/resample_detail.h"

namespace bgevl::vision {

namespace {

using nlohmann::json;
using namespace config_json;

// Python's a // b for b > 0.
long long floordiv(long long a, long long b) {
  const long long q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

// _get_patch_output_size: the aspect-keeping size (height, width) inside `target`.
std::pair<int, int> patch_output_size(int height, int width, std::pair<int, int> target) {
  const int th = target.first, tw = target.second;
  const double scale_w = double(tw) / double(width);
  const double scale_h = double(th) / double(height);
  if (scale_w < scale_h) {
    const double nh = std::ceil(double(height) * scale_w);
    return {nh < double(th) ? int(nh) : th, tw};
  }
  const double nw = std::ceil(double(width) * scale_h);
  return {th, nw < double(tw) ? int(nw) : tw};
}

// rescale + normalize for every byte value, per channel, with the reference's arithmetic.
struct ValueTable {
  float v[3][256];
};

void fill_table(const LlavaImageConfig& cfg, ValueTable& t) {
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      float x = cfg.do_rescale ? static_cast<float>(double(v) * cfg.rescale_factor)
                               : static_cast<float>(v);
      if (cfg.do_normalize) x = (x - cfg.mean[size_t(c)]) / cfg.std[size_t(c)];
      t.v[c][v] = x;
    }
  }
}

// The (height, width) one tile of h x w comes out of _preprocess with.
std::pair<long long, long long> resized_tile_size(int h, int w, const LlavaImageConfig& cfg) {
  if (!cfg.do_resize) return {h, w};
  // get_resize_output_image_size(shortest_edge, default_to_square=False)
  const bool w_short = w <= h;
  const long long s = w_short ? w : h, l = w_short ? h : w;
  const long long new_short = cfg.shortest_edge;
  const long long new_long = static_cast<long long>(double(new_short * l) / double(s));
  BGEVL_CHECK_ARG(new_long > 0 && new_long <= (1 << 20), "llava_preprocess: a ", w, "x", h,
                  " tile would be resized to an unsupported size");
  return w_short ? std::make_pair(new_long, new_short) : std::make_pair(new_short, new_long);
}

std::pair<int, int> output_tile_size(int h, int w, const LlavaImageConfig& cfg) {
  if (cfg.do_center_crop) return {cfg.crop_height, cfg.crop_width};
  const auto r = resized_tile_size(h, w, cfg);
  return {int(r.first), int(r.second)};
}

// _preprocess of one tile: `src` is an h x w RGB region, rows `stride` bytes apart. Writes
// 3 x out_h x out_w floats (CHW) to `out`.
void process_tile(const uint8_t* src, int h, int w, size_t stride, const LlavaImageConfig& cfg,
                  const ValueTable& table, int out_h, int out_w, float* out) {
  const auto [rh, rw] = resized_tile_size(h, w, cfg);
  // center_crop (or the whole resized tile); the part outside the resized tile is zero padding.
  const long long ch = cfg.do_center_crop ? cfg.crop_height : rh;
  const long long cw = cfg.do_center_crop ? cfg.crop_width : rw;
  const long long top = floordiv(rh - ch, 2), left = floordiv(rw - cw, 2);
  const int y0 = int(std::max(0LL, top)), y1 = int(std::min(rh, top + ch));
  const int x0 = int(std::max(0LL, left)), x1 = int(std::min(rw, left + cw));
  const int ny = std::max(0, y1 - y0), nx = std::max(0, x1 - x0);

  // The needed window [y0, y1) x [x0, x1) of the resized tile.
  const uint8_t* win = nullptr;
  size_t win_stride = 0;
  thread_local std::vector<uint8_t> contiguous, window;
  if (ny > 0 && nx > 0) {
    if (rh == h && rw == w) {  // Image.resize to the same size: a copy
      win = src + size_t(y0) * stride + size_t(x0) * 3;
      win_stride = stride;
    } else {
      const uint8_t* in = src;
      if (stride != size_t(w) * 3) {
        contiguous.resize(size_t(h) * size_t(w) * 3);
        for (int y = 0; y < h; ++y)
          std::memcpy(contiguous.data() + size_t(y) * w * 3, src + size_t(y) * stride,
                      size_t(w) * 3);
        in = contiguous.data();
      }
      window.resize(size_t(ny) * size_t(nx) * 3);
      resize_bicubic_window(in, w, h, 3, int(rw), int(rh), x0, y0, nx, ny, window.data(),
                            size_t(nx) * 3);
      win = window.data();
      win_stride = size_t(nx) * 3;
    }
  }

  const size_t plane = size_t(out_h) * size_t(out_w);
  const int xa = int(x0 - left), xb = int(x1 - left);  // output columns covered by the window
  for (int c = 0; c < 3; ++c) {
    const float* lut = table.v[c];
    const float pad = lut[0];
    float* o = out + size_t(c) * plane;
    for (int y = 0; y < out_h; ++y) {
      float* orow = o + size_t(y) * out_w;
      const long long sy = top + y;  // row of the resized tile
      if (sy < y0 || sy >= y1 || nx == 0) {
        std::fill(orow, orow + out_w, pad);
        continue;
      }
      const uint8_t* wrow = win + size_t(sy - y0) * win_stride + c;
      std::fill(orow, orow + xa, pad);
      float* od = orow + xa;
      for (int x = 0; x < xb - xa; ++x) od[x] = lut[wrow[size_t(x) * 3]];
      std::fill(orow + std::max(xa, xb), orow + out_w, pad);
    }
  }
}

void check_config(const LlavaImageConfig& cfg) {
  BGEVL_CHECK_ARG(cfg.resample == 3,
                  "llava_preprocess: only resample=3 (bicubic) is supported, got ", cfg.resample);
  BGEVL_CHECK_ARG(cfg.shortest_edge > 0 && cfg.crop_height > 0 && cfg.crop_width > 0,
                  "llava_preprocess: size and crop_size must be positive");
  BGEVL_CHECK_ARG(!cfg.grid_pinpoints.empty(), "llava_preprocess: image_grid_pinpoints is empty");
  for (const auto& [h, w] : cfg.grid_pinpoints)
    BGEVL_CHECK_ARG(h > 0 && w > 0 && h <= (1 << 15) && w <= (1 << 15),
                    "llava_preprocess: bad image_grid_pinpoints entry [", h, ", ", w, "]");
}

}  // namespace

std::pair<int, int> select_best_resolution(int height, int width,
                                           const std::vector<std::pair<int, int>>& pinpoints) {
  BGEVL_CHECK_ARG(height > 0 && width > 0,
                  "select_best_resolution: image size must be positive, got ", height, "x", width);
  BGEVL_CHECK_ARG(!pinpoints.empty(), "select_best_resolution: no candidate resolutions");
  std::pair<int, int> best{0, 0};
  bool found = false;
  long long max_effective = 0;
  long long min_wasted = std::numeric_limits<long long>::max();  // float("inf")
  const long long area = (long long)height * width;
  for (const auto& [h, w] : pinpoints) {
    const double scale = std::min(double(w) / double(width), double(h) / double(height));
    const long long dw = (long long)(double(width) * scale);
    const long long dh = (long long)(double(height) * scale);
    const long long effective = std::min(dw * dh, area);
    const long long wasted = (long long)h * w - effective;
    if (effective > max_effective ||
        (effective == max_effective && (!found || wasted < min_wasted))) {
      max_effective = effective;
      min_wasted = wasted;
      best = {h, w};
      found = true;
    }
  }
  return best;
}

LlavaPixels llava_preprocess(const Image& decoded, const LlavaImageConfig& cfg, int presize) {
  check_config(cfg);
  BGEVL_CHECK_ARG(presize >= 0, "llava_preprocess: presize must be >= 0, got ", presize);
  BGEVL_CHECK_ARG(decoded.width > 0 && decoded.height > 0, "llava_preprocess: empty image (",
                  decoded.width, "x", decoded.height, ")");

  // Image.open(p).resize((presize, presize)) then convert("RGB") (or convert_to_rgb alone).
  // With do_convert_rgb false the reference would keep other modes, which the 3-channel model
  // cannot take: bgevl always converts.
  const Image* rgb = &decoded;
  Image holder;
  if (presize > 0 && (decoded.width != presize || decoded.height != presize)) {
    holder = resize_bicubic(decoded, presize, presize);
    if (holder.mode != PilMode::RGB) holder = to_rgb(holder);
    rgb = &holder;
  } else if (decoded.mode != PilMode::RGB) {
    holder = to_rgb(decoded);
    rgb = &holder;
  }
  BGEVL_CHECK_ARG(
      rgb->channels == 3 && rgb->data.size() == size_t(rgb->width) * size_t(rgb->height) * 3,
      "llava_preprocess: malformed RGB image (", rgb->width, "x", rgb->height, "x", rgb->channels,
      ", ", rgb->data.size(), " bytes)");
  const int H = rgb->height, W = rgb->width;

  // get_image_patches: best resolution, aspect-keeping resize, symmetric zero padding.
  const auto best = select_best_resolution(H, W, cfg.grid_pinpoints);
  const auto [nh, nw] = patch_output_size(H, W, best);
  // _pad_for_patching recomputes the size from the resized image (it comes out the same).
  const auto [ph_size, pw_size] = patch_output_size(nh, nw, best);
  BGEVL_CHECK(ph_size == nh && pw_size == nw, Error,
              "llava_preprocess: inconsistent patch output size");
  const int paste_y = int(floordiv(best.first - nh, 2)),
            paste_x = int(floordiv(best.second - nw, 2));
  const int PH = nh + 2 * paste_y, PW = nw + 2 * paste_x;
  thread_local std::vector<uint8_t> canvas;
  canvas.resize(size_t(PH) * size_t(PW) * 3);
  const size_t cstride = size_t(PW) * 3;
  for (int y = 0; y < PH; ++y) {  // zero only the padding
    uint8_t* row = canvas.data() + size_t(y) * cstride;
    if (y < paste_y || y >= paste_y + nh) {
      std::memset(row, 0, cstride);
    } else {
      std::memset(row, 0, size_t(paste_x) * 3);
      std::memset(row + size_t(paste_x + nw) * 3, 0, size_t(paste_x) * 3);
    }
  }
  resize_bicubic_window(rgb->data.data(), W, H, 3, nw, nh, 0, 0, nw, nh,
                        canvas.data() + size_t(paste_y) * cstride + size_t(paste_x) * 3, cstride);

  // divide_to_patches: row-major tiles of crop_height squared.
  const int P = cfg.crop_height;
  struct Tile {
    int y, x, h, w;
  };
  std::vector<Tile> tiles;
  for (int i = 0; i < PH; i += P)
    for (int j = 0; j < PW; j += P)
      tiles.push_back({i, j, std::min(P, PH - i), std::min(P, PW - j)});

  // The base image: squashed to shortest_edge x shortest_edge.
  const int se = cfg.shortest_edge;
  thread_local std::vector<uint8_t> base;
  base.resize(size_t(se) * size_t(se) * 3);
  resize_bicubic_window(rgb->data.data(), W, H, 3, se, se, 0, 0, se, se, base.data(),
                        size_t(se) * 3);

  // Every tile must come out the same size for np.array(pixel_values) to stack them.
  const auto [oh, ow] = output_tile_size(se, se, cfg);
  for (const Tile& t : tiles) {
    const auto s = output_tile_size(t.h, t.w, cfg);
    BGEVL_CHECK_ARG(s.first == oh && s.second == ow, "llava_preprocess: tiles of different sizes (",
                    oh, "x", ow, " and ", s.first, "x", s.second,
                    "); do_center_crop=false needs tiles that resize to one size");
  }

  LlavaPixels r;
  r.num_tiles = int(tiles.size()) + 1;
  r.tile_height = oh;
  r.tile_width = ow;
  r.image_height = H;
  r.image_width = W;
  const size_t tile_floats = size_t(3) * size_t(oh) * size_t(ow);
  r.data.resize(tile_floats * size_t(r.num_tiles));
  ValueTable table;
  fill_table(cfg, table);
  process_tile(base.data(), se, se, size_t(se) * 3, cfg, table, oh, ow, r.data.data());
  for (size_t k = 0; k < tiles.size(); ++k) {
    const Tile& t = tiles[k];
    process_tile(canvas.data() + size_t(t.y) * cstride + size_t(t.x) * 3, t.h, t.w, cstride, cfg,
                 table, oh, ow, r.data.data() + (k + 1) * tile_floats);
  }
  return r;
}

// The most tiles one grid pinpoint may make (BGE-VL-MLLM's largest, 1008x336 at 336, is 3;
// llava-v1.6's 3x3 grid is 9).
constexpr int64_t kMaxGridTiles = 64;

LlavaImageConfig load_llava_image_config(const std::string& path) {
  const json j = read_config(path);

  // Missing keys take LlavaNextImageProcessor.__init__'s defaults (size 224, crop 224x224), not
  // the llava-v1.6 values LlavaImageConfig starts with.
  LlavaImageConfig c;
  c.shortest_edge = 224;
  c.crop_height = c.crop_width = 224;
  c.do_resize = get_bool(j, path, "do_resize", c.do_resize);
  if (auto it = j.find("size"); it != j.end() && !it->is_null()) {
    if (it->is_number()) {  // get_size_dict(int, default_to_square=False) -> shortest_edge
      c.shortest_edge = get_side(*it, path, "size");
    } else if (it->is_object() && it->contains("shortest_edge")) {
      c.shortest_edge = get_side(it->at("shortest_edge"), path, "size.shortest_edge");
    } else if (it->is_object() && it->contains("height") && it->contains("width")) {
      bad_key(path, "size",
              "{\"height\", \"width\"} (a fixed-size resize) is not supported; bgevl supports "
              "{\"shortest_edge\": N}");
    } else {
      bad_key(path, "size", "must be an integer or {\"shortest_edge\": N}, got " + io::brief(*it));
    }
  }
  check_resample(j, path);
  c.resample = 3;
  c.do_center_crop = get_bool(j, path, "do_center_crop", c.do_center_crop);
  read_crop_size(j, path, c.crop_height, c.crop_width);
  if (auto it = j.find("image_grid_pinpoints"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->empty())
      bad_key(path, "image_grid_pinpoints",
              "must be a non-empty list of [height, width] pairs, got " + io::brief(*it));
    c.grid_pinpoints.clear();
    for (size_t i = 0; i < it->size(); ++i) {
      const json& e = (*it)[i];
      const std::string k = "image_grid_pinpoints[" + std::to_string(i) + "]";
      if (!e.is_array() || e.size() != 2)
        bad_key(path, k, "must be a [height, width] pair, got " + io::brief(e));
      const int h = get_positive_int(e[0], path, k), w = get_positive_int(e[1], path, k);
      if (h > (1 << 15) || w > (1 << 15))
        bad_key(path, k, "is too large (at most 32768 per side), got " + io::brief(e));
      // Each pinpoint is cut into crop-sized tiles, every one a pass of the vision tower.
      const int64_t tiles = int64_t((h + c.crop_height - 1) / c.crop_height) *
                            ((w + c.crop_height - 1) /
                             c.crop_height);  // square tiles: patch_size = crop_size["height"]
      if (tiles > kMaxGridTiles)
        bad_key(path, k,
                "is " + std::to_string(h) + "x" + std::to_string(w) + ": " + std::to_string(tiles) +
                    " tiles of " + std::to_string(c.crop_height) + "x" +
                    std::to_string(c.crop_height) + ", more than the limit of " +
                    std::to_string(kMaxGridTiles));
      c.grid_pinpoints.emplace_back(h, w);
    }
  }
  read_rescale_normalize(j, path, c);
  c.do_pad = get_bool(j, path, "do_pad", c.do_pad);
  c.do_convert_rgb = get_bool(j, path, "do_convert_rgb", c.do_convert_rgb);
  return c;
}

}  // namespace bgevl::vision
