#include "models/llava_next/config.h"

#include <nlohmann/json.hpp>

#include "bgevl/errors.h"
#include "io/json.h"

namespace bgevl::llava_next {

using json = nlohmann::json;
using io::get_opt;
using io::need_object;

int64_t Config::vision_layers_used() const {
  return vision_feature_layer < 0 ? vision.num_hidden_layers + 1 + vision_feature_layer
                                  : vision_feature_layer;
}

Config load_config(const std::string& path) {
  const json j = io::read_json_file(path);
  BGEVL_CHECK_ARG(j.is_object(), path, " is not a JSON object");
  Config c;
  std::string model_type;
  get_opt(j, "model_type", model_type, path, "");
  BGEVL_CHECK_ARG(model_type.empty() || model_type == "llava_next", path, ": model_type is '",
                  model_type, "', expected 'llava_next'");
  c.vision = clip::read_vision_config(need_object(j, "vision_config", path), path);

  const json& t = need_object(j, "text_config", path);
  std::string text_type = "mistral";
  get_opt(t, "model_type", text_type, path, "text_config.");
  BGEVL_CHECK_ARG(text_type == "mistral", path, ": text_config.model_type '", text_type,
                  "' is not supported (BGE-VL-MLLM uses 'mistral')");
  auto& m = c.text;
  const std::string w = "text_config.";
  get_opt(t, "vocab_size", m.vocab_size, path, w);
  get_opt(t, "hidden_size", m.hidden_size, path, w);
  get_opt(t, "intermediate_size", m.intermediate_size, path, w);
  get_opt(t, "num_hidden_layers", m.num_hidden_layers, path, w);
  get_opt(t, "num_attention_heads", m.num_attention_heads, path, w);
  get_opt(t, "num_key_value_heads", m.num_key_value_heads, path, w);
  if (t.contains("num_key_value_heads") && t["num_key_value_heads"].is_null())
    m.num_key_value_heads = m.num_attention_heads;
  get_opt(t, "head_dim", m.head_dim, path, w);
  get_opt(t, "hidden_act", m.hidden_act, path, w);
  get_opt(t, "rms_norm_eps", m.rms_norm_eps, path, w);
  get_opt(t, "rope_theta", m.rope_theta, path, w);
  get_opt(t, "max_position_embeddings", m.max_position_embeddings, path, w);
  if (t.contains("sliding_window") && t["sliding_window"].is_null()) m.sliding_window = 0;
  get_opt(t, "sliding_window", m.sliding_window, path, w);
  if (m.head_dim == 0 && m.num_attention_heads > 0)
    m.head_dim = m.hidden_size / m.num_attention_heads;
  io::check_range(m.vocab_size, 1, 1 << 24, path, w + "vocab_size");
  io::check_range(m.hidden_size, 1, 1 << 16, path, w + "hidden_size");
  io::check_range(m.intermediate_size, 1, 1 << 18, path, w + "intermediate_size");
  io::check_range(m.num_hidden_layers, 1, 1024, path, w + "num_hidden_layers");
  io::check_range(m.num_attention_heads, 1, 1024, path, w + "num_attention_heads");
  io::check_range(m.num_key_value_heads, 1, m.num_attention_heads, path, w + "num_key_value_heads",
                  "at most num_attention_heads");
  io::check_range(m.head_dim, 1, 1024, path, w + "head_dim");
  io::check_range(m.max_position_embeddings, 1, 1 << 24, path, w + "max_position_embeddings");
  io::check_range(m.sliding_window, 0, int64_t(1) << 40, path, w + "sliding_window");
  io::check_positive(m.rms_norm_eps, 1.0, path, w + "rms_norm_eps");
  io::check_positive(m.rope_theta, 1e30, path, w + "rope_theta");
  BGEVL_CHECK_ARG(m.hidden_size > 0 && m.num_attention_heads > 0 && m.num_key_value_heads > 0 &&
                      m.num_attention_heads % m.num_key_value_heads == 0 && m.head_dim > 0 &&
                      m.head_dim % 2 == 0 && m.intermediate_size > 0 && m.vocab_size > 0 &&
                      m.num_hidden_layers > 0,
                  path, ": text_config has an inconsistent geometry (hidden_size ", m.hidden_size,
                  ", heads ", m.num_attention_heads, ", key-value heads ", m.num_key_value_heads,
                  ", head_dim ", m.head_dim, ")");
  BGEVL_CHECK_ARG(m.hidden_act == "silu", path, ": text_config.hidden_act '", m.hidden_act,
                  "' is not supported (silu)");

  get_opt(j, "image_token_index", c.image_token_index, path, "");
  get_opt(j, "projector_hidden_act", c.projector_hidden_act, path, "");
  get_opt(j, "vision_feature_select_strategy", c.vision_feature_select_strategy, path, "");
  get_opt(j, "vision_feature_layer", c.vision_feature_layer, path, "");
  get_opt(j, "image_seq_length", c.image_seq_length, path, "");
  io::check_range(c.image_token_index, 0, m.vocab_size - 1, path, "image_token_index",
                  "a token id of text_config.vocab_size");
  io::check_range(c.image_seq_length, 0, 1 << 20, path, "image_seq_length");
  BGEVL_CHECK_ARG(
      c.vision_feature_select_strategy == "default" || c.vision_feature_select_strategy == "full",
      path, ": vision_feature_select_strategy '", c.vision_feature_select_strategy,
      "' must be 'default' or 'full'");
  BGEVL_CHECK_ARG(
      c.vision_layers_used() >= 0 && c.vision_layers_used() <= c.vision.num_hidden_layers, path,
      ": vision_feature_layer ", c.vision_feature_layer, " is outside the ",
      c.vision.num_hidden_layers, "-layer vision tower");
  if (j.contains("image_grid_pinpoints") && !j["image_grid_pinpoints"].is_null()) {
    const auto& g = j["image_grid_pinpoints"];
    c.image_grid_pinpoints.clear();
    BGEVL_CHECK_ARG(g.is_array() && !g.empty(), path,
                    ": image_grid_pinpoints must be a non-empty list");
    for (const auto& p : g) {
      BGEVL_CHECK_ARG(p.is_array() && p.size() == 2 && p[0].is_number_integer() &&
                          p[1].is_number_integer() && p[0].get<int64_t>() > 0 &&
                          p[1].get<int64_t>() > 0 && p[0].get<int64_t>() <= (1 << 15) &&
                          p[1].get<int64_t>() <= (1 << 15),
                      path, ": image_grid_pinpoints entries must be [height, width] of at most ",
                      "32768 each, got ", io::brief(p));
      c.image_grid_pinpoints.emplace_back(int(p[0].get<int64_t>()), int(p[1].get<int64_t>()));
    }
  }
  for (const auto& [h, w] : c.image_grid_pinpoints)
    BGEVL_CHECK_ARG(h % c.vision.image_size == 0 && w % c.vision.image_size == 0, path,
                    ": image_grid_pinpoints entry [", h, ", ", w,
                    "] is not a multiple of the vision tower's image_size ", c.vision.image_size);
  BGEVL_CHECK_ARG(c.projector_hidden_act == "gelu" || c.projector_hidden_act == "gelu_new" ||
                      c.projector_hidden_act == "quick_gelu" || c.projector_hidden_act == "relu" ||
                      c.projector_hidden_act == "gelu_pytorch_tanh",
                  path, ": projector_hidden_act '", c.projector_hidden_act, "' is not supported");
  return c;
}

vision::LlavaImageConfig load_image_config(const std::string& path, const Config& model) {
  auto c = vision::load_llava_image_config(path);
  BGEVL_CHECK_ARG(c.grid_pinpoints == model.image_grid_pinpoints, path,
                  ": image_grid_pinpoints differ from config.json's (the processor would tile "
                  "images on another grid than the model unpacks)");
  BGEVL_CHECK_ARG(
      c.crop_height == model.vision.image_size && c.crop_width == model.vision.image_size, path,
      ": crop_size ", c.crop_height, "x", c.crop_width,
      " differs from the vision tower's image_size ", model.vision.image_size,
      " (config.json): tiles must be what the tower takes");
  return c;
}

}  // namespace bgevl::llava_next
