// config.json -> typed structs. Keys transformers gives a default take that default (real
// checkpoints omit keys equal to the defaults); unknown keys are ignored; a key that is needed
// and has no default, or a key of the wrong type, is an error naming the key and the file.
#pragma once

#include <cstdint>
#include <string>

namespace bgevl::io {

struct ClipEncoderConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
};

struct ClipTextConfig : ClipEncoderConfig {
  int64_t vocab_size = 49408;
  int64_t max_position_embeddings = 77;
  int64_t eos_token_id = 49407;
  int64_t bos_token_id = 49406;
  int64_t pad_token_id = 1;
};

struct ClipVisionConfig : ClipEncoderConfig {
  int64_t image_size = 224;
  int64_t patch_size = 32;
  int64_t num_channels = 3;
};

struct ClipConfig {
  std::string model_type;  // "clip"
  ClipTextConfig text;
  ClipVisionConfig vision;
  int64_t projection_dim = 512;
};

// The model family a folder holds, from config.json's model_type (or architectures).
enum class ModelKind { Clip, LlavaNext };
ModelKind detect_model_kind(const std::string& config_json_path);

// Parses a CLIP config.json (transformers' CLIPConfig semantics, defaults included).
ClipConfig load_clip_config(const std::string& config_json_path);

}  // namespace bgevl::io
