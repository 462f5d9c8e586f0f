#include "io/config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bgevl/errors.h"
#include "io/json_util.h"

namespace bgevl::io {

using json = nlohmann::json;

json read_json_file(const std::string& path) {
  std::error_code ec;
  BGEVL_CHECK(std::filesystem::exists(path, ec), FileNotFoundError, "file not found: ", path);
  std::ifstream in(path);
  BGEVL_CHECK(in.good(), Error, "cannot read ", path);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw InvalidArgumentError(detail::concat(path, " is not valid JSON (", e.what(), ")"));
  }
}

namespace {

template <typename T>
void get_opt(const json& obj, const char* key, T& out, const std::string& file,
             const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return;  // keep transformers' default
  try {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!it->is_string()) throw std::runtime_error("not a string");
    } else if constexpr (std::is_integral_v<T>) {
      if (!it->is_number_integer()) throw std::runtime_error("not an integer");
    } else {
      if (!it->is_number()) throw std::runtime_error("not a number");
    }
    out = it->get<T>();
  } catch (const std::exception& e) {
    throw InvalidArgumentError(detail::concat(file, ": key '", where, key, "' has the wrong type (",
                                              e.what(), "): ", it->dump()));
  }
}

const json& need_object(const json& obj, const char* key, const std::string& file) {
  auto it = obj.find(key);
  BGEVL_CHECK_ARG(it != obj.end(), file, ": missing needed key '", key, "'");
  BGEVL_CHECK_ARG(it->is_object(), file, ": key '", key, "' must be an object");
  return *it;
}

void read_encoder(const json& j, ClipEncoderConfig& c, const std::string& file,
                  const std::string& where) {
  get_opt(j, "hidden_size", c.hidden_size, file, where);
  get_opt(j, "intermediate_size", c.intermediate_size, file, where);
  get_opt(j, "num_hidden_layers", c.num_hidden_layers, file, where);
  get_opt(j, "num_attention_heads", c.num_attention_heads, file, where);
  get_opt(j, "hidden_act", c.hidden_act, file, where);
  get_opt(j, "layer_norm_eps", c.layer_norm_eps, file, where);
}

void check_encoder(const ClipEncoderConfig& c, const std::string& file, const std::string& where) {
  BGEVL_CHECK_ARG(c.hidden_size > 0 && c.num_attention_heads > 0 &&
                      c.hidden_size % c.num_attention_heads == 0,
                  file, ": ", where, "hidden_size (", c.hidden_size,
                  ") must be a positive multiple of num_attention_heads (", c.num_attention_heads,
                  ")");
  BGEVL_CHECK_ARG(c.intermediate_size > 0 && c.num_hidden_layers >= 0, file, ": ", where,
                  "intermediate_size and num_hidden_layers must be positive");
  static const char* acts[] = {"quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu"};
  bool ok = false;
  for (auto a : acts) ok |= c.hidden_act == a;
  BGEVL_CHECK_ARG(ok, file, ": ", where, "hidden_act '", c.hidden_act,
                  "' is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, relu)");
}

void read_vision_keys(const json& v, ClipVisionConfig& c, const std::string& file) {
  read_encoder(v, c, file, "vision_config.");
  get_opt(v, "image_size", c.image_size, file, "vision_config.");
  get_opt(v, "patch_size", c.patch_size, file, "vision_config.");
  get_opt(v, "num_channels", c.num_channels, file, "vision_config.");
}

// transformers' CLIPVisionConfig defaults (4.45), then the keys present.
ClipVisionConfig read_clip_vision(const json& v, const std::string& file) {
  ClipVisionConfig c;
  c.hidden_size = 768;
  c.intermediate_size = 3072;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 12;
  read_vision_keys(v, c, file);
  return c;
}

void check_vision(const ClipVisionConfig& c, const std::string& file) {
  check_encoder(c, file, "vision_config.");
  BGEVL_CHECK_ARG(c.patch_size > 0 && c.image_size % c.patch_size == 0, file,
                  ": vision_config.image_size (", c.image_size,
                  ") must be a multiple of patch_size (", c.patch_size, ")");
}

}  // namespace

ModelKind detect_model_kind(const std::string& path) {
  const json j = read_json_file(path);
  BGEVL_CHECK_ARG(j.is_object(), path, " is not a JSON object");
  std::string model_type;
  if (j.contains("model_type") && j["model_type"].is_string())
    model_type = j["model_type"].get<std::string>();
  if (model_type == "clip") return ModelKind::Clip;
  if (model_type == "llava_next") return ModelKind::LlavaNext;
  if (j.contains("architectures") && j["architectures"].is_array()) {
    for (const auto& a : j["architectures"]) {
      if (!a.is_string()) continue;
      const auto s = a.get<std::string>();
      if (s == "CLIPModel" || s == "MMRet_CLIP") return ModelKind::Clip;
      if (s == "LLaVANextForEmbedding" || s == "LlavaNextForConditionalGeneration")
        return ModelKind::LlavaNext;
    }
  }
  BGEVL_CHECK_ARG(!model_type.empty() || j.contains("architectures"), path,
                  ": missing needed key 'model_type'");
  throw InvalidArgumentError(detail::concat(path, ": model_type '", model_type,
                                            "' is not a BGE-VL model (expected 'clip' or "
                                            "'llava_next')"));
}

ClipConfig load_clip_config(const std::string& path) {
  const json j = read_json_file(path);
  BGEVL_CHECK_ARG(j.is_object(), path, " is not a JSON object");
  ClipConfig c;
  get_opt(j, "model_type", c.model_type, path, "");
  BGEVL_CHECK_ARG(c.model_type.empty() || c.model_type == "clip", path, ": model_type is '",
                  c.model_type, "', expected 'clip'");
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
  c.vision = read_clip_vision(vj, path);
  if (j.contains("vision_config_dict") && j["vision_config_dict"].is_object())
    read_vision_keys(j["vision_config_dict"], c.vision, path);
  check_encoder(c.text, path, "text_config.");
  check_vision(c.vision, path);
  BGEVL_CHECK_ARG(c.projection_dim > 0 && c.text.vocab_size > 0 &&
                      c.text.max_position_embeddings > 0,
                  path, ": projection_dim, text_config.vocab_size and max_position_embeddings "
                  "must be positive");
  return c;
}

int64_t LlavaNextConfig::vision_layers_used() const {
  return vision_feature_layer < 0 ? vision.num_hidden_layers + 1 + vision_feature_layer
                                  : vision_feature_layer;
}

LlavaNextConfig load_llava_next_config(const std::string& path) {
  const json j = read_json_file(path);
  BGEVL_CHECK_ARG(j.is_object(), path, " is not a JSON object");
  LlavaNextConfig c;
  std::string model_type;
  get_opt(j, "model_type", model_type, path, "");
  BGEVL_CHECK_ARG(model_type.empty() || model_type == "llava_next", path, ": model_type is '",
                  model_type, "', expected 'llava_next'");
  c.vision = read_clip_vision(need_object(j, "vision_config", path), path);
  check_vision(c.vision, path);

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
  if (t.contains("sliding_window") && t["sliding_window"].is_null()) m.sliding_window = 0;
  get_opt(t, "sliding_window", m.sliding_window, path, w);
  if (m.head_dim == 0 && m.num_attention_heads > 0) m.head_dim = m.hidden_size / m.num_attention_heads;
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
  BGEVL_CHECK_ARG(c.vision_feature_select_strategy == "default" ||
                      c.vision_feature_select_strategy == "full",
                  path, ": vision_feature_select_strategy '", c.vision_feature_select_strategy,
                  "' must be 'default' or 'full'");
  BGEVL_CHECK_ARG(c.vision_layers_used() >= 0 && c.vision_layers_used() <= c.vision.num_hidden_layers,
                  path, ": vision_feature_layer ", c.vision_feature_layer, " is outside the ",
                  c.vision.num_hidden_layers, "-layer vision tower");
  if (j.contains("image_grid_pinpoints") && !j["image_grid_pinpoints"].is_null()) {
    const auto& g = j["image_grid_pinpoints"];
    c.image_grid_pinpoints.clear();
    BGEVL_CHECK_ARG(g.is_array() && !g.empty(), path, ": image_grid_pinpoints must be a non-empty list");
    for (const auto& p : g) {
      BGEVL_CHECK_ARG(p.is_array() && p.size() == 2 && p[0].is_number_integer() &&
                          p[1].is_number_integer() && p[0].get<int64_t>() > 0 && p[1].get<int64_t>() > 0,
                      path, ": image_grid_pinpoints entries must be [height, width], got ", p.dump());
      c.image_grid_pinpoints.emplace_back(p[0].get<int64_t>(), p[1].get<int64_t>());
    }
  }
  BGEVL_CHECK_ARG(c.projector_hidden_act == "gelu" || c.projector_hidden_act == "gelu_new" ||
                      c.projector_hidden_act == "quick_gelu" || c.projector_hidden_act == "relu" ||
                      c.projector_hidden_act == "gelu_pytorch_tanh",
                  path, ": projector_hidden_act '", c.projector_hidden_act, "' is not supported");
  return c;
}

}  // namespace bgevl::io
