// BGE-VL-MLLM's settings, in one place: config.json (transformers 4.45's LlavaNextConfig with a
// Mistral text_config and a CLIP vision_config, defaults included), the image processor's
// preprocessor_config.json, and the one constant of the BGE-VL model code (the 512 x 512
// pre-resize). The grid pinpoints and the tile size are the model's; the preprocessor config must
// agree with them (the reference's processor and model read them separately).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/clip/config.h"
#include "vision/llava_processor.h"

namespace bgevl::llava_next {

struct MistralConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 14336;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 8;
  int64_t head_dim = 0;  // 0: hidden_size / num_attention_heads
  std::string hidden_act = "silu";
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t max_position_embeddings = 4096 * 32;  // MistralConfig's default; the text length limit
  int64_t sliding_window = 4096;                // 0: none (config.json "sliding_window": null)
};

struct Config {
  clip::VisionConfig vision;
  MistralConfig text;
  int64_t image_token_index = 32000;
  std::string projector_hidden_act = "gelu";
  std::string vision_feature_select_strategy = "default";  // or "full"
  int64_t vision_feature_layer = -2;
  std::vector<std::pair<int, int>> image_grid_pinpoints{
      {336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};  // (height, width)
  int64_t image_seq_length = 576;
  // data_process's Image.open(p).resize((512, 512)) before the processor: a constant of the BGE-VL
  // model code, not of any config file.
  int pre_resize = 512;

  // Encoder layers the vision tower runs: hidden_states[vision_feature_layer] needs this many.
  int64_t vision_layers_used() const;
  // Patches per side of a tile (336 / 14 = 24).
  int64_t tile_side() const { return vision.image_size / vision.patch_size; }
};

// config.json of a LLaVA-NeXT checkpoint.
Config load_config(const std::string& config_json_path);

// preprocessor_config.json (LlavaNextImageProcessor) with the model's grid pinpoints; a different
// image_grid_pinpoints there, or tiles (crop_size) other than the vision tower's image_size, are
// an InvalidArgumentError naming both files.
vision::LlavaImageConfig load_image_config(const std::string& preprocessor_config_path,
                                           const Config& model);

}  // namespace bgevl::llava_next
