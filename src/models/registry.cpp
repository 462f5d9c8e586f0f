#include "models/registry.h"

#include <algorithm>
#include <filesystem>

#include "bgevl/errors.h"
#include "io/json.h"

namespace bgevl {
// Each family folder defines its entry (models/<family>/embedder.cpp).
namespace clip {
models::FamilyEntry family_entry();
}
namespace llava_next {
models::FamilyEntry family_entry();
}

const char* family_name(Family family) { return models::entry(family).model_types.front().c_str(); }

namespace models {

namespace fs = std::filesystem;

const std::vector<FamilyEntry>& families() {
  static const std::vector<FamilyEntry> all = {
      clip::family_entry(),
      llava_next::family_entry(),
  };
  return all;
}

const FamilyEntry& entry(Family family) {
  for (const auto& e : families())
    if (e.family == family) return e;
  throw Error("family not in the registry");
}

namespace {
bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}
}  // namespace

const FamilyEntry& detect(const std::string& config_json_path) {
  const auto info = io::read_model_type(config_json_path);
  for (const auto& e : families())
    if (contains(e.model_types, info.model_type)) return e;
  for (const auto& a : info.architectures)
    for (const auto& e : families())
      if (contains(e.architectures, a)) return e;
  BGEVL_CHECK_ARG(!info.model_type.empty() || !info.architectures.empty(), config_json_path,
                  ": missing needed key 'model_type'");
  std::string known;
  for (const auto& e : families())
    for (const auto& t : e.model_types) known += (known.empty() ? "'" : ", '") + t + "'";
  throw InvalidArgumentError(detail::concat(config_json_path, ": model_type '", info.model_type,
                                            "' is not a BGE-VL model (bgevl knows ", known, ")"));
}

std::optional<Family> processor_family(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  if (fs::is_regular_file(d / "config.json", ec))
    return detect((d / "config.json").string()).family;
  if (fs::is_regular_file(d / "preprocessor_config.json", ec)) {
    const auto j = io::read_json_file((d / "preprocessor_config.json").string());
    if (j.is_object())
      if (auto it = j.find("image_processor_type"); it != j.end() && it->is_string())
        for (const auto& e : families())
          if (contains(e.image_processors, it->get<std::string>())) return e.family;
  }
  for (const auto& e : families())
    for (const auto& f : e.tokenizer_files)
      if (fs::is_regular_file(d / f, ec)) return e.family;
  return std::nullopt;
}

}  // namespace models
}  // namespace bgevl
