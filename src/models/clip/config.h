// config.json -> typed structs. Keys transformers gives a default take that default (real
// checkpoints omit keys equal to the defaults); unknown keys are ignored; a key that is needed
// and has no default, or a key of the wrong type, is an error naming the key and the file.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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

struct MistralConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 14336;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 8;
  int64_t head_dim = 0;             // 0: hidden_size / num_attention_heads
  std::string hidden_act = "silu";
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t sliding_window = 4096;    // 0: none (config.json "sliding_window": null)
};

struct LlavaNextConfig {
  ClipVisionConfig vision;
  MistralConfig text;
  int64_t image_token_index = 32000;
  std::string projector_hidden_act = "gelu";
  std::string vision_feature_select_strategy = "default";  // or "full"
  int64_t vision_feature_layer = -2;
  std::vector<std::pair<int64_t, int64_t>> image_grid_pinpoints{
      {336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};  // (height, width)
  int64_t image_seq_length = 576;
  // Encoder layers the vision tower runs: hidden_states[vision_feature_layer] needs this many.
  int64_t vision_layers_used() const;
};

// The model family a folder holds, from config.json's model_type (or architectures).
enum class ModelKind { Clip, LlavaNext };
ModelKind detect_model_kind(const std::string& config_json_path);

// Parses a CLIP config.json (transformers' CLIPConfig semantics, defaults included).
ClipConfig load_clip_config(const std::string& config_json_path);

// Parses a LLaVA-NeXT config.json (LlavaNextConfig with a Mistral text_config and a CLIP
// vision_config, transformers 4.45 defaults).
LlavaNextConfig load_llava_next_config(const std::string& config_json_path);

}  // namespace bgevl::io
