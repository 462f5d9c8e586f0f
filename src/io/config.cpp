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
  c.vision.hidden_size = 768;
  c.vision.intermediate_size = 3072;
  c.vision.num_hidden_layers = 12;
  c.vision.num_attention_heads = 12;

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
  for (const json* v : {&vj, j.contains("vision_config_dict") && j["vision_config_dict"].is_object()
                                 ? &j["vision_config_dict"]
                                 : nullptr}) {
    if (!v) continue;
    read_encoder(*v, c.vision, path, "vision_config.");
    get_opt(*v, "image_size", c.vision.image_size, path, "vision_config.");
    get_opt(*v, "patch_size", c.vision.patch_size, path, "vision_config.");
    get_opt(*v, "num_channels", c.vision.num_channels, path, "vision_config.");
  }
  check_encoder(c.text, path, "text_config.");
  check_encoder(c.vision, path, "vision_config.");
  BGEVL_CHECK_ARG(c.vision.patch_size > 0 && c.vision.image_size % c.vision.patch_size == 0, path,
                  ": vision_config.image_size (", c.vision.image_size,
                  ") must be a multiple of patch_size (", c.vision.patch_size, ")");
  BGEVL_CHECK_ARG(c.projection_dim > 0 && c.text.vocab_size > 0 &&
                      c.text.max_position_embeddings > 0,
                  path, ": projection_dim, text_config.vocab_size and max_position_embeddings "
                  "must be positive");
  return c;
}

}  // namespace bgevl::io
