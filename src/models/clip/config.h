// BGE-VL-CLIP's settings, in one place: config.json (transformers' CLIPConfig semantics, defaults
// included) and the image processor's preprocessor_config.json, checked against each other.
// Keys transformers gives a default take that default (real checkpoints omit keys equal to the
// defaults); unknown keys are ignored; a key that is needed and has no default, or a key of the
// wrong type, is an error naming the key and the file.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "vision/image.h"

namespace bgevl::clip {

struct EncoderConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
};

struct TextConfig : EncoderConfig {
  int64_t vocab_size = 49408;
  int64_t max_position_embeddings = 77;
  int64_t eos_token_id = 49407;
  int64_t bos_token_id = 49406;
  int64_t pad_token_id = 1;
};

struct VisionConfig : EncoderConfig {
  int64_t image_size = 224;
  int64_t patch_size = 32;
  int64_t num_channels = 3;
};

struct Config {
  TextConfig text;
  VisionConfig vision;
  int64_t projection_dim = 512;
};

// config.json of a CLIP checkpoint.
Config load_config(const std::string& config_json_path);

// A config.json's "vision_config" object (CLIPVisionConfig defaults, then its keys, checked),
// also for the CLIP vision towers of other families.
VisionConfig read_vision_config(const nlohmann::json& vision_config, const std::string& file);

// preprocessor_config.json (CLIPImageProcessor), which must crop to the vision tower's image_size.
vision::ClipImageConfig load_image_config(const std::string& preprocessor_config_path,
                                          const Config& model);

}  // namespace bgevl::clip
