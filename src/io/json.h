// Reading JSON files (config.json, tokenizer and preprocessor configs) into typed values: every
// failure names the file and the key.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "bgevl/errors.h"

namespace bgevl::io {

// Parses a JSON file: FileNotFoundError if absent, InvalidArgumentError if malformed.
nlohmann::json read_json_file(const std::string& path);

// Reads obj[key] into `out` when present and not null (else `out` keeps its default, as
// transformers' config classes do); a value of the wrong type is an InvalidArgumentError naming
// the file and `where` + key.
template <typename T>
void get_opt(const nlohmann::json& obj, const char* key, T& out, const std::string& file,
             const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return;
  try {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!it->is_string()) throw std::runtime_error("not a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!it->is_boolean()) throw std::runtime_error("not true or false");
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

// obj[key], which must be a JSON object; InvalidArgumentError naming the file otherwise.
const nlohmann::json& need_object(const nlohmann::json& obj, const char* key,
                                  const std::string& file);

// obj[key] as a string; nullopt when absent or null. InvalidArgumentError naming `where` when it
// is another type.
std::optional<std::string> opt_string(const nlohmann::json& obj, const char* key,
                                      const std::string& where);

// Calls fn(object, where) for each non-blank line of a JSONL file, `where` being "PATH line N"
// (for messages). FileNotFoundError "PATH: cannot read <what>" when the file cannot be opened;
// InvalidArgumentError naming the line when one is not a JSON object.
void for_each_jsonl(const std::string& path, const std::string& what,
                    const std::function<void(const nlohmann::json&, const std::string&)>& fn);

// The "model_type" and "architectures" of a config.json, for the family registry.
struct ModelTypeInfo {
  std::string model_type;
  std::vector<std::string> architectures;
};
ModelTypeInfo read_model_type(const std::string& config_json_path);

}  // namespace bgevl::io
