// The BGE-VL-MLLM image path: the reference's Image.open(p).resize((512, 512)) (PIL's default
// filter: bicubic, nearest for P and 1-bit images) before convert("RGB"), then transformers
// 4.45.2's LlavaNextImageProcessor ("anyres"). No libtorch here.
#pragma once

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "vision/image.h"

namespace bgevl::vision {

struct LlavaImageConfig {
  int shortest_edge = 336;  // "size": {"shortest_edge": 336}
  int crop_height = 336;    // "crop_size"
  int crop_width = 336;
  std::vector<std::pair<int, int>> grid_pinpoints{
      {336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};  // (height, width)
  bool do_resize = true, do_center_crop = true, do_rescale = true, do_normalize = true,
       do_pad = true;
  bool do_convert_rgb = true;
  double rescale_factor = 1.0 / 255.0;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
  int resample = 3;
};
LlavaImageConfig load_llava_image_config(const std::string& preprocessor_config_json_path);

struct LlavaPixels {
  int num_tiles = 0;  // 1 (the squashed base image) + the grid tiles
  int tile_height = 0, tile_width = 0;
  int image_height = 0, image_width = 0;  // image_sizes: the size after the 512x512 resize
  std::vector<float> data;                // num_tiles * 3 * tile_height * tile_width, CHW per tile
};

// Image.open(p).resize((512, 512)).convert("RGB") -- `presize` 0 skips the resize -- then the
// LLaVA-NeXT processor: select_best_resolution, aspect-keeping resize, centred padding,
// row-major tiles, the squashed base image first, rescale, normalise. Equal to transformers'
// pixel_values / image_sizes to 1e-6.
LlavaPixels llava_preprocess(const Image& decoded, const LlavaImageConfig& cfg, int presize = 512);

// transformers' select_best_resolution: the (height, width) pinpoint for an image of that size.
std::pair<int, int> select_best_resolution(int height, int width,
                                           const std::vector<std::pair<int, int>>& pinpoints);

}  // namespace bgevl::vision
