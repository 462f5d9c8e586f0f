#include "models/clip/config.h"

#include <nlohmann/json.hpp>

#include "bgevl/errors.h"
#include "io/json.h"

namespace bgevl::clip {

using json = nlohmann::json;
using io::get_opt;
using io::need_object;

namespace {

void read_encoder(const json& j, EncoderConfig& c, const std::string& file,
                  const std::string& where) {
  get_opt(j, "hidden_size", c.hidden_size, file, where);
  get_opt(j, "intermediate_size", c.intermediate_size, file, where);
  get_opt(j, "num_hidden_layers", c.num_hidden_layers, file, where);
  get_opt(j, "num_attention_heads", c.num_attention_heads, file, where);
  get_opt(j, "hidden_act", c.hidden_act, file, where);
  get_opt(j, "layer_norm_eps", c.layer_norm_eps, file, where);
}

void check_encoder(const EncoderConfig& c, const std::string& file, const std::string& where) {
  io::check_range(c.hidden_size, 1, 1 << 16, file, where + "hidden_size");
  io::check_range(c.intermediate_size, 1, 1 << 18, file, where + "intermediate_size");
  io::check_range(c.num_hidden_layers, 0, 1024, file, where + "num_hidden_layers");
  io::check_range(c.num_attention_heads, 1, 1024, file, where + "num_attention_heads");
  io::check_positive(c.layer_norm_eps, 1.0, file, where + "layer_norm_eps");
  BGEVL_CHECK_ARG(
      c.hidden_size > 0 && c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0,
      file, ": ", where, "hidden_size (", c.hidden_size,
      ") must be a positive multiple of num_attention_heads (", c.num_attention_heads, ")");
  BGEVL_CHECK_ARG(c.intermediate_size > 0 && c.num_hidden_layers >= 0, file, ": ", where,
                  "intermediate_size and num_hidden_layers must be positive");
  static const char* acts[] = {"quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu"};
  bool ok = false;
  for (auto a : acts) ok |= c.hidden_act == a;
  BGEVL_CHECK_ARG(ok, file, ": ", where, "hidden_act '", c.hidden_act,
                  "' is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu)");
}

void read_vision_keys(const json& v, VisionConfig& c, const std::string& file) {
  read_encoder(v, c, file, "vision_config.");
  get_opt(v, "image_size", c.image_size, file, "vision_config.");
  get_opt(v, "patch_size", c.patch_size, file, "vision_config.");
  get_opt(v, "num_channels", c.num_channels, file, "vision_config.");
}

// transformers' CLIPVisionConfig defaults (4.45), then the keys present.
VisionConfig read_clip_vision(const json& v, const std::string& file) {
  VisionConfig c;
  c.hidden_size = 768;
  c.intermediate_size = 3072;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 12;
  read_vision_keys(v, c, file);
  return c;
}

void check_vision(const VisionConfig& c, const std::string& file) {
  check_encoder(c, file, "vision_config.");
  io::check_range(c.image_size, 1, 8192, file, "vision_config.image_size");
  io::check_range(c.patch_size, 1, c.image_size, file, "vision_config.patch_size",
                  "at most image_size");
  io::check_range(c.num_channels, 3, 3, file, "vision_config.num_channels",
                  "the processors make RGB images");
  const int64_t side = c.image_size / c.patch_size;
  io::check_range(side * side, 1, 1 << 16, file, "the patch count (image_size / patch_size)^2",
                  "the vision tower's positions");
  BGEVL_CHECK_ARG(c.patch_size > 0 && c.image_size % c.patch_size == 0, file,
                  ": vision_config.image_size (", c.image_size,
                  ") must be a multiple of patch_size (", c.patch_size, ")");
}

}  // namespace

VisionConfig read_vision_config(const json& v, const std::string& file) {
  auto c = read_clip_vision(v, file);
  check_vision(c, file);
  return c;
}

Config load_config(const std::string& path) {
  const json j = io::read_json_file(path);
  BGEVL_CHECK_ARG(j.is_object(), path, " is not a JSON object");
  Config c;
  std::string model_type;
  get_opt(j, "model_type", model_type, path, "");
  BGEVL_CHECK_ARG(model_type.empty() || model_type == "clip", path, ": model_type is '", model_type,
                  "', expected 'clip'");
  get_opt(j, "projection_dim", c.projection_dim, path, "");

  // transformers' CLIPTextConfig / CLIPVisionConfig defaults (4.45).
  c.text.hidden_size = 512;
  c.text.intermediate_size = 2048;
  c.text.num_hidden_layers = 12;
  c.text.num_attention_heads = 8;

  const json& tj = need_object(j, "text_config", path);
  const json& vj = need_object(j, "vision_config", path);
  for (const json* t : {&tj, j.contains("text_config_dict") && j["text_config_dict"].is_object()
                                 ? &j["text_config_dict"]
                                 : nullptr}) {
    if (!t) continue;
    read_encoder(*t, c.text, path, "text_config.");
    get_opt(*t, "vocab_size", c.text.vocab_size, path, "text_config.");
    get_opt(*t, "max_position_embeddings", c.text.max_position_embeddings, path, "text_config.");
    get_opt(*t, "eos_token_id", c.text.eos_token_id, path, "text_config.");
    get_opt(*t, "bos_token_id", c.text.bos_token_id, path, "text_config.");
    get_opt(*t, "pad_token_id", c.text.pad_token_id, path, "text_config.");
  }
  c.vision = read_vision_config(vj, path);
  if (j.contains("vision_config_dict") && j["vision_config_dict"].is_object())
    read_vision_keys(j["vision_config_dict"], c.vision, path);
  check_encoder(c.text, path, "text_config.");
  check_vision(c.vision, path);
  io::check_range(c.projection_dim, 1, 1 << 16, path, "projection_dim");
  io::check_range(c.text.vocab_size, 1, 1 << 24, path, "text_config.vocab_size");
  io::check_range(c.text.max_position_embeddings, 1, 1 << 16, path,
                  "text_config.max_position_embeddings");
  BGEVL_CHECK_ARG(
      c.projection_dim > 0 && c.text.vocab_size > 0 && c.text.max_position_embeddings > 0, path,
      ": projection_dim, text_config.vocab_size and max_position_embeddings "
      "must be positive");
  return c;
}

vision::ClipImageConfig load_image_config(const std::string& path, const Config& model) {
  auto c = vision::load_clip_image_config(path);
  BGEVL_CHECK_ARG(
      c.crop_height == model.vision.image_size && c.crop_width == model.vision.image_size, path,
      ": crop_size ", c.crop_height, "x", c.crop_width,
      " does not match the vision tower's image_size ", model.vision.image_size, " (config.json)");
  return c;
}

}  // namespace bgevl::clip
